from collections.abc import Iterator

import pytest

from tests.fake_llm import FakeLLM


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLLM]:
    server = FakeLLM()
    yield server
    server.stop()


@pytest.fixture
def fake_llm(fake_llm_server: FakeLLM) -> Iterator[FakeLLM]:
    """The fake OpenAI-compatible server, reset to its defaults for this test."""
    fake_llm_server.reset()
    yield fake_llm_server
    fake_llm_server.reset()


@pytest.fixture
def user(django_user_model):  # type: ignore[no-untyped-def]
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "pw-for-tests-only")


@pytest.fixture(autouse=True)
async def _close_llm_clients() -> object:
    """Pooled LLM clients belong to the test's event loop: close them with it."""
    yield
    from llm import client

    await client.aclose_all()
