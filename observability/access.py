"""Who may read the metrics: a bearer token (METRICS_TOKEN) or an address in METRICS_ALLOWED_NETWORKS.

The same rule guards /metrics on the web server and a worker's own metrics port.
"""
from __future__ import annotations

import hmac
import ipaddress
from functools import lru_cache

from django.conf import settings

ALLOWED, NO_TOKEN, REFUSED = 200, 401, 403


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs)


def _in_networks(address: str, cidrs: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _networks(cidrs))


def metrics_access(*, authorization: str, address: str) -> int:
    """ALLOWED, NO_TOKEN (a token is expected and none was sent: 401) or REFUSED (403)."""
    token = settings.METRICS_TOKEN
    if token and authorization.startswith("Bearer ") and hmac.compare_digest(
            authorization.removeprefix("Bearer ").strip().encode(), token.encode()):
        return ALLOWED
    if _in_networks(address, tuple(settings.METRICS_ALLOWED_NETWORKS)):
        return ALLOWED
    return NO_TOKEN if token and not authorization else REFUSED
