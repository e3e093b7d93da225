"""Streamed responses that stay streamed under ASGI.

Django's ASGI handler collects a synchronous iterator whole before it sends the first byte
(StreamingHttpResponse.__aiter__ falls back to `list()`), so a 100,000-row export would sit in memory.
Under ASGI the chunks are pulled here a batch at a time on the request's thread (database cursors
belong to a thread); under WSGI (the test client, `manage.py runserver`) the iterator is sent as is.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from itertools import islice

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse

PULL_BATCH = 64  # chunks per thread hop


async def _pulled(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    take = sync_to_async(lambda: list(islice(chunks, PULL_BATCH)), thread_sensitive=True)
    try:
        while batch := await take():
            for chunk in batch:
                yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:  # a client that left: end the generator (and its cursor) on its own thread
            await sync_to_async(close, thread_sensitive=True)()


def streaming_response(request: HttpRequest, chunks: Iterator[bytes], *, content_type: str,
                       filename: str | None = None) -> StreamingHttpResponse:
    """A StreamingHttpResponse of `chunks`, pulled as the client reads under ASGI too."""
    content = _pulled(chunks) if isinstance(request, ASGIRequest) else chunks
    response = StreamingHttpResponse(content, content_type=content_type)
    if filename:
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
