"""Where an endpoint URL may point: not at the server's own metadata service or admin ports.

An administrator can allow hosts (LLM_ENDPOINT_ALLOWED_HOSTS, checked first) or deny more
(LLM_ENDPOINT_DENIED_HOSTS). Names are resolved and every address is checked, so a DNS name that
points at 169.254.169.254 is refused like the address itself. Loopback is allowed only in DEBUG
(LLM_ENDPOINT_ALLOW_LOOPBACK): a local fake server or model is normal on a developer's machine.
"""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

DEFAULT_PORTS = {"http": 80, "https": 443}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address_problem(address: IPAddress, denied: set[str]) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if str(address) in denied:
        return f"{address} is on the deny list (LLM_ENDPOINT_DENIED_HOSTS)"
    if address.is_link_local:
        # 169.254.0.0/16 and fe80::/10 hold cloud metadata services (169.254.169.254).
        return f"{address} is a link-local address, where cloud metadata services live"
    if address.is_loopback:
        if settings.LLM_ENDPOINT_ALLOW_LOOPBACK:
            return None
        return f"{address} is this server itself (loopback is allowed only with DEBUG or LLM_ENDPOINT_ALLOW_LOOPBACK)"
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        return f"{address} is not an address an LLM API can have"
    return None


def url_problem(url: str, *, resolve: bool = True) -> str | None:
    """Why the URL must not be called, or None. Names that do not resolve are left to the call."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        return "the URL has no host"
    allowed = {h.lower() for h in settings.LLM_ENDPOINT_ALLOWED_HOSTS}
    if host in allowed:
        return None
    denied = {h.lower() for h in settings.LLM_ENDPOINT_DENIED_HOSTS}
    if host in denied:
        return f"{host} is on the deny list (LLM_ENDPOINT_DENIED_HOSTS)"
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme, 80)
    except ValueError:
        return "the URL's port is not a number from 0 to 65535"
    if port in settings.LLM_ENDPOINT_DENIED_PORTS:
        return f"port {port} belongs to a database, cache or admin service, not an LLM API"
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        if host == "localhost" or host.endswith(".localhost"):
            addresses = [ipaddress.ip_address("127.0.0.1")]
        elif not resolve:
            return None
        else:
            addresses = _resolve(host, port)
    for address in addresses:
        if str(address) in allowed:
            continue
        problem = _address_problem(address, denied)
        if problem:
            return problem if str(address) == host else f"{host} resolves to {address}: {problem}"
    return None


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
