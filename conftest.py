from collections.abc import Callable, Iterator

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.fake_llm import FakeLLM
from tests.servers import AppServer


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


@pytest.fixture
def user_client(user) -> Client:  # type: ignore[no-untyped-def]
    """A browser-like client logged in as the superuser `user`."""
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def api(user) -> APIClient:  # type: ignore[no-untyped-def]
    """An API client authenticated as the superuser `user`."""
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def app_server() -> Iterator[Callable[..., AppServer]]:
    """Factory: daphne on the test database with the embedded executor; all are stopped after the test.

    wait_for_http_ready=False waits for the port only, so no HTTP request reaches the server.
    """
    started: list[AppServer] = []

    def start(wait_for_http_ready: bool = True, **env: str) -> AppServer:
        server = AppServer(**env).start(wait_for_http_ready=wait_for_http_ready)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(autouse=True)
async def _close_llm_clients() -> object:
    """Pooled LLM clients belong to the test's event loop: close them with it, and the ledger
    thread's database connections with the test (its database may be flushed or dropped next)."""
    from prices.book import book_forget

    book_forget()  # the price book of an earlier test's database
    yield
    from llm import client, ratelimit
    from releases import cache as releases_cache
    from runs.engine import dbthread, ledger

    releases_cache.clear()  # releases never change, but a test's database is emptied under them
    ledger.endpoint_configs_forget()  # the next test's endpoint of the same id is another endpoint
    book_forget()

    await client.aclose_all()
    await dbthread.close_connections()
    ratelimit.forget()  # an endpoint id of the next test's database is another endpoint
    ratelimit.close_connections()


def _person_with_perms(django_user_model, perms: tuple[str, ...]):  # type: ignore[no-untyped-def]
    from django.contrib.auth.models import Permission  # the app registry is ready once a test runs

    person = django_user_model.objects.create_user(f"person{django_user_model.objects.count()}", password="x")
    for perm in perms:
        app_label, codename = perm.split(".")
        person.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return person


@pytest.fixture
def api_with_perms(django_user_model) -> Callable[..., object]:  # type: ignore[no-untyped-def]
    """Factory: an API client authenticated as a user with only the named permissions ("app.codename")."""
    from rest_framework.test import APIClient

    def make(*perms: str) -> APIClient:
        client = APIClient()
        client.force_authenticate(_person_with_perms(django_user_model, perms))
        return client
    return make


@pytest.fixture
def client_with_perms(django_user_model) -> Callable[..., Client]:  # type: ignore[no-untyped-def]
    """Factory: a logged-in client whose user has only the named permissions ("app.codename")."""

    def make(*perms: str) -> Client:
        client = Client()
        client.force_login(_person_with_perms(django_user_model, perms))
        return client
    return make
