"""The WebSocket origin check: a handshake is let through only from the page's own origin.

Channels' AllowedHostsOriginValidator compares the Origin's host with ALLOWED_HOSTS and ignores
scheme and port, so a page served on another port of the same host (another app, a dev server)
could open a socket with the user's cookie. Here the Origin must equal the request's own origin
(scheme, host and port of its Host header, the host in ALLOWED_HOSTS), or be listed in
CSRF_TRUSTED_ORIGINS (a proxy that serves the site under another name), as Django's CSRF check
does for forms.
"""
from typing import Any
from urllib.parse import SplitResult, urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]  # scheme, host, port


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    values = [value for key, value in scope.get("headers", []) if key.lower() == name]
    if len(values) != 1:
        return None  # missing, or sent twice: nothing to trust
    try:
        return values[0].decode("ascii")
    except UnicodeDecodeError:
        return None


def _origin_of(url: str) -> Origin | None:
    try:
        parts: SplitResult = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/") or parts.username:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def _request_scheme(scope: dict[str, Any]) -> str:
    """http or https, as the browser saw the page (TLS may end at a proxy, as in Django's is_secure)."""
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if proxy:
        header = proxy[0].removeprefix("HTTP_").replace("_", "-").lower().encode()
        if _header(scope, header) == proxy[1]:
            return "https"
    return "https" if scope.get("scheme") in ("wss", "https") else "http"


def request_origin(scope: dict[str, Any]) -> Origin | None:
    """The origin of the page that may open this socket: its Host header, if ALLOWED_HOSTS allows it."""
    host = _header(scope, b"host")
    if not host:
        return None
    domain, port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    scheme = _request_scheme(scope)
    # split_domain_port keeps an IPv6 address in brackets; urlsplit's hostname drops them.
    return scheme, domain.strip("[]"), int(port) if port else DEFAULT_PORTS[scheme]


def _trusted(origin: Origin, pattern: str) -> bool:
    """One CSRF_TRUSTED_ORIGINS entry: exact, or `scheme://*.domain` for its subdomains."""
    wildcard = "://*." in pattern
    trusted = _origin_of(pattern.replace("://*.", "://", 1))
    if trusted is None or trusted[0] != origin[0] or trusted[2] != origin[2]:
        return False
    return origin[1].endswith("." + trusted[1]) if wildcard else origin[1] == trusted[1]


def origin_allowed(scope: dict[str, Any]) -> bool:
    header = _header(scope, b"origin")
    origin = _origin_of(header) if header else None
    if origin is None:
        return False
    if origin == request_origin(scope):
        return True
    return any(_trusted(origin, pattern) for pattern in settings.CSRF_TRUSTED_ORIGINS)


class SameOriginValidator:
    """ASGI middleware: refuses the handshake (403) unless `origin_allowed`."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            raise ValueError("SameOriginValidator only guards WebSocket connections")
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
