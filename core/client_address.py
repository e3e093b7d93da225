"""The client's address for per-address throttles (failed log-ins).

X-Forwarded-For is written by whoever sends the request, so it is trusted only when NUM_PROXIES
says how many proxies append to it: the address that many hops from the right is the one the
outermost proxy saw. Unset (or 0), the header is ignored and REMOTE_ADDR is the client. (DRF's own
get_ident uses the whole header when NUM_PROXIES is unset: a forged header would be a fresh budget.)
"""
from __future__ import annotations

from typing import Any

from rest_framework.settings import api_settings


def client_address(request: Any) -> str:
    remote_addr = request.META.get("REMOTE_ADDR") or ""
    num_proxies = api_settings.NUM_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if not num_proxies or not forwarded:
        return remote_addr
    hops = [hop.strip() for hop in forwarded.split(",")]
    return hops[-min(num_proxies, len(hops))] or remote_addr


class ClientAddressMixin:
    """For DRF throttles: identify an anonymous client by client_address(), never a forgeable header."""

    def get_ident(self, request: Any) -> str:
        return client_address(request)
