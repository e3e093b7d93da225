from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from llm import client
from tests.fake_llm import FakeLLM

PLANTED_KEY = "sk-planted-Zq8vW3xY7kL2mN9pR4tU"


@pytest.fixture
async def close_llm_clients() -> AsyncIterator[None]:
    """Each async test runs on its own loop: close the pooled clients it opened."""
    yield
    await client.aclose_all()


@pytest.fixture
def config_for(fake_llm: FakeLLM) -> Iterator[Any]:
    """EndpointConfig pointing at the fake server; each call gets a fresh id, so no learned capabilities leak."""
    made: list[client.EndpointConfig] = []

    def build(**fields: Any) -> client.EndpointConfig:
        fields.setdefault("base_url", fake_llm.base_url)
        config = client.EndpointConfig(id=fields.pop("id", 10_000 + len(made) + id(made) % 1000 * 100),
                                       name=fields.pop("name", "fake"), api_key=fields.pop("api_key", "sk-test"),
                                       **fields)
        made.append(config)
        return config

    yield build
    for config in made:
        client.forget_capabilities(config)

