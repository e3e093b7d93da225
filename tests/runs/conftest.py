from collections.abc import Callable, Iterator

import pytest

from tests.servers import AppServer


@pytest.fixture
def app_server() -> Iterator[Callable[..., AppServer]]:
    """Factory: start daphne on the test database; every server started is stopped after the test."""
    started: list[AppServer] = []

    def start(wait_for_http_ready: bool = True, **env: str) -> AppServer:
        server = AppServer(**env).start(wait_for_http_ready=wait_for_http_ready)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
