"""An ASGI guard that answers 413 to a request whose Content-Length is over its route's limit, before
Django reads the body (Django's ASGI handler spools a whole body to disk before any view runs).
daphne (Twisted) receives the whole body before it calls the application: only a reverse proxy in
front refuses it sooner.

Limits come from settings.BODY_LIMITS: (path regular expression, bytes) pairs; the first match wins
and a path that matches none is let through (Django's own limits then apply)."""
from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings


class BodyLimitMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.limits = [(re.compile(pattern), limit) for pattern, limit in getattr(settings, "BODY_LIMITS", [])]

    def limit_of(self, path: str) -> int | None:
        return next((limit for pattern, limit in self.limits if pattern.match(path)), None)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            limit = self.limit_of(scope.get("path", ""))
            length = dict(scope.get("headers") or []).get(b"content-length", b"")
            if limit is not None and length.isdigit() and int(length) > limit:
                body = json.dumps({"file": [f"The request body is larger than {limit} bytes."]}).encode()
                await send({"type": "http.response.start", "status": 413,
                            "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
