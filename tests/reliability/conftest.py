"""Fixtures for the reliability tests. SOAK=1 (make soak) runs the long forms."""
import os
from collections.abc import Callable, Iterator

import pytest
from django.core.cache import cache

from tests.servers import AppServer

SOAK = os.environ.get("SOAK") == "1"


def soak_or(long: int, short: int) -> int:
    """The soak's size of a fault or load test, or the shortened size that `make test` runs."""
    return long if SOAK else short


@pytest.fixture(autouse=True)
def _fresh_throttles() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def app_server() -> Iterator[Callable[..., AppServer]]:
    """Factory: daphne on the test database with the embedded executor; all are stopped after the test."""
    started: list[AppServer] = []

    def start(wait_for_http_ready: bool = False, **env: str) -> AppServer:
        server = AppServer(**env).start(wait_for_http_ready=wait_for_http_ready)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
