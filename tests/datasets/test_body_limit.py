"""core.body_limit: an upload whose Content-Length is over its route's limit is a 413 before its body is read."""
from __future__ import annotations

from typing import Any

from django.test import override_settings

from core.body_limit import BodyLimitMiddleware


async def call(path: str, length: int) -> tuple[list[dict[str, Any]], list[str]]:
    reached: list[str] = []
    sent: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body must not be read")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "path": path, "headers": [(b"content-length", str(length).encode())]}
    await BodyLimitMiddleware(app)(scope, receive, send)
    return sent, reached


@override_settings(BODY_LIMITS=[(r"^/(api/)?datasets/\d+/(import|upload)/$", 1000)])
async def test_a_2_gb_upload_is_refused_by_its_length_and_other_routes_pass() -> None:
    for path in ("/api/datasets/7/import/", "/datasets/7/upload/"):
        sent, reached = await call(path, 2 * 1024**3)
        assert reached == [] and sent[0]["status"] == 413, path
        assert b'"file"' in sent[1]["body"]
    assert (await call("/api/datasets/7/import/", 1000))[1] == ["/api/datasets/7/import/"]
    assert (await call("/api/blocks/", 2 * 1024**3))[1] == ["/api/blocks/"]
