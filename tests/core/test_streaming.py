"""core.streaming: under ASGI a streamed response is pulled a batch at a time on one thread, never
collected whole before the first byte; under WSGI the iterator is sent as is."""
from __future__ import annotations

import threading
from collections.abc import Iterator

from django.test import AsyncRequestFactory, RequestFactory

from core.streaming import PULL_BATCH, streaming_response


def _counted(pulled: list[int], count: int) -> Iterator[bytes]:
    for index in range(count):
        pulled.append(threading.get_ident())
        yield b"%d\n" % index


async def test_under_asgi_chunks_are_pulled_a_batch_at_a_time_on_one_thread() -> None:
    pulled: list[int] = []
    response = streaming_response(AsyncRequestFactory().get("/"), _counted(pulled, 1000), content_type="text/plain",
                                  filename="cases.txt")
    assert response.is_async and response["Content-Disposition"] == 'attachment; filename="cases.txt"'
    body = aiter(response)
    assert await anext(body) == b"0\n"
    assert len(pulled) == PULL_BATCH  # not the whole 1,000
    rest = [chunk async for chunk in body]
    assert b"".join(rest) == b"".join(b"%d\n" % i for i in range(1, 1000))
    assert len(set(pulled)) == 1 and pulled[0] != threading.get_ident()


def test_under_wsgi_the_iterator_is_sent_as_is() -> None:
    pulled: list[int] = []
    response = streaming_response(RequestFactory().get("/"), _counted(pulled, 3), content_type="text/plain")
    assert not response.is_async and "Content-Disposition" not in response
    assert b"".join(response) == b"0\n1\n2\n" and len(set(pulled)) == 1
