"""Where an endpoint URL may point: not at the server's own metadata service, admin ports or networks.

An administrator can allow hosts (LLM_ENDPOINT_ALLOWED_HOSTS, checked first, skip every check) or
deny more (LLM_ENDPOINT_DENIED_HOSTS). Names are resolved and every address is checked, so a DNS
name that points at 169.254.169.254 is refused like the address itself. Loopback and private
networks (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, ...) are allowed only in DEBUG
(LLM_ENDPOINT_ALLOW_LOOPBACK, LLM_ENDPOINT_ALLOW_PRIVATE) or when listed in
LLM_ENDPOINT_ALLOWED_NETWORKS (CIDR networks or host names). IPv6 forms that carry an IPv4
address (v4-mapped, v4-compatible, 6to4, NAT64, Teredo) are judged by that address.

`CheckedResolver` applies the same rules when a connection is opened: the addresses it checked are
the ones connected to, so a name that resolves differently a second time cannot slip through.
"""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from django.conf import settings

DEFAULT_PORTS = {"http": 80, "https": 443}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Networks of one organisation, carrier NAT and protocol assignments: not where a public LLM API lives.
PRIVATE_NETWORKS = [ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15",
    "fc00::/7", "fec0::/10", "64:ff9b:1::/48",
)]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")


class EgressRefused(Exception):
    """A connection the egress rules forbid; the message says why."""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (v4-mapped, 6to4, NAT64, Teredo, v4-compatible)."""
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if address in _NAT64 or (address in _V4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _allowed_networks() -> tuple[set[str], list[IPNetwork]]:
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in settings.LLM_ENDPOINT_ALLOWED_NETWORKS:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            names.add(entry.strip().lower().rstrip("."))
    return names, networks


def _special_problem(address: IPAddress, *, private_ok: bool) -> str | None:
    if address.is_link_local:
        # 169.254.0.0/16 and fe80::/10 hold cloud metadata services (169.254.169.254).
        return f"{address} is a link-local address, where cloud metadata services live"
    if address.is_loopback:
        if private_ok or settings.LLM_ENDPOINT_ALLOW_LOOPBACK:
            return None
        return f"{address} is this server itself (loopback is allowed only with DEBUG or LLM_ENDPOINT_ALLOW_LOOPBACK)"
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        return f"{address} is not an address an LLM API can have"
    if any(address in network for network in PRIVATE_NETWORKS) and not (
            private_ok or settings.LLM_ENDPOINT_ALLOW_PRIVATE):
        return (f"{address} is a private network address (allowed only with DEBUG, or when listed in "
                "LLM_ENDPOINT_ALLOWED_NETWORKS)")
    return None


def address_problem(address: IPAddress, *, host: str = "") -> str | None:
    """Why a connection to this address must not be made, or None. `host` is the name it came from."""
    denied = {h.lower() for h in settings.LLM_ENDPOINT_DENIED_HOSTS}
    if str(address) in {h.lower() for h in settings.LLM_ENDPOINT_ALLOWED_HOSTS}:
        return None
    names, networks = _allowed_networks()
    private_ok = host in names or any(address in network for network in networks)
    if str(address) in denied:
        return f"{address} is on the deny list (LLM_ENDPOINT_DENIED_HOSTS)"
    embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    if embedded is None:
        return _special_problem(address, private_ok=private_ok)
    # An IPv6 form of an IPv4 address reaches that address: judge it by the address it carries.
    if str(embedded) in denied:
        return f"{address} stands for {embedded}, which is on the deny list (LLM_ENDPOINT_DENIED_HOSTS)"
    problem = _special_problem(embedded, private_ok=private_ok or any(embedded in n for n in networks))
    return f"{address} stands for {embedded}: {problem}" if problem else None


def _host_problem(host: str, port: int) -> str | None:
    denied = {h.lower() for h in settings.LLM_ENDPOINT_DENIED_HOSTS}
    if host in denied:
        return f"{host} is on the deny list (LLM_ENDPOINT_DENIED_HOSTS)"
    if port in settings.LLM_ENDPOINT_DENIED_PORTS:
        return f"port {port} belongs to a database, cache or admin service, not an LLM API"
    return None


def _addresses_problem(host: str, addresses: list[IPAddress]) -> str | None:
    for address in addresses:
        problem = address_problem(address, host=host)
        if problem:
            return problem if str(address) == host else f"{host} resolves to {address}: {problem}"
    return None


def url_problem(url: str, *, resolve: bool = True) -> str | None:
    """Why the URL must not be called, or None. Names that do not resolve are left to the call."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        return "the URL has no host"
    if host in {h.lower() for h in settings.LLM_ENDPOINT_ALLOWED_HOSTS}:
        return None
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme, 80)
    except ValueError:
        return "the URL's port is not a number from 0 to 65535"
    problem = _host_problem(host, port)
    if problem:
        return problem
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        if host == "localhost" or host.endswith(".localhost"):
            addresses = [ipaddress.ip_address("127.0.0.1")]
        elif not resolve:
            return None
        else:
            addresses = _resolve(host, port)
    return _addresses_problem(host, addresses)


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


class CheckedResolver(AbstractResolver):
    """aiohttp's resolver with the egress rules: refuses a name if any address it resolves to is forbidden.

    aiohttp connects to the addresses returned here, so what was checked is what is connected to.
    """

    def __init__(self) -> None:
        self._resolver = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        name = host.lower().rstrip(".")
        if name in {h.lower() for h in settings.LLM_ENDPOINT_ALLOWED_HOSTS}:
            return results
        problem = _host_problem(name, port) or _addresses_problem(
            name, [ipaddress.ip_address(result["host"].split("%")[0]) for result in results])
        if problem:
            raise EgressRefused(problem)
        return results

    async def close(self) -> None:
        await self._resolver.close()
