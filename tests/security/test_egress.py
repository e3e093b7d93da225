"""Endpoint URLs cannot reach the server's metadata service, admin ports or (outside DEBUG) itself."""
import asyncio
import json
import os
import subprocess
import sys
import time

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from llm import egress, pool
from llm.models import Endpoint
from tests.factories import make_endpoint

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.170.2/v1",            # ECS task metadata: link-local
    "http://[fe80::1]/v1",
    "http://[::ffff:169.254.169.254]/v1",  # the same address written as IPv4-mapped IPv6
    "http://metadata.google.internal/computeMetadata/v1",
    "http://100.100.100.200/latest/meta-data",
    "http://0.0.0.0:8000/v1",
])
def test_metadata_and_unspecified_addresses_are_refused(url):
    assert egress.url_problem(url) is not None


@pytest.mark.parametrize("url", ["http://10.0.0.5:6379/v1", "http://10.0.0.5:5432/v1", "http://10.0.0.5:22/v1"])
def test_database_cache_and_ssh_ports_are_refused(url):
    assert "not an LLM API" in egress.url_problem(url)


@pytest.mark.parametrize("url", ["https://api.openai.com/v1", "http://10.0.0.5:8000/v1", "https://[2606:4700::1]/v1"])
def test_ordinary_api_urls_are_allowed(url):
    assert egress.url_problem(url) is None


@override_settings(LLM_ENDPOINT_ALLOW_LOOPBACK=False)
@pytest.mark.parametrize("url", ["http://127.0.0.1:8001/v1", "http://localhost:8000/admin/", "http://[::1]:8000/v1",
                                 "http://app.localhost/v1"])
def test_loopback_is_refused_without_debug(url):
    assert "loopback" in egress.url_problem(url)


@override_settings(LLM_ENDPOINT_ALLOW_LOOPBACK=True)
def test_loopback_is_allowed_in_debug():
    assert egress.url_problem("http://127.0.0.1:8001/v1") is None


@override_settings(LLM_ENDPOINT_ALLOW_LOOPBACK=False, LLM_ENDPOINT_ALLOWED_HOSTS=["127.0.0.1", "169.254.169.254"])
def test_an_administrator_can_allow_a_host_explicitly():
    assert egress.url_problem("http://127.0.0.1:8001/v1") is None
    assert egress.url_problem("http://169.254.169.254/v1") is None


@override_settings(LLM_ENDPOINT_DENIED_HOSTS=["llm.internal.example"])
def test_an_administrator_can_deny_a_host():
    assert "deny list" in egress.url_problem("https://llm.internal.example/v1")


def test_a_dns_name_that_points_at_the_metadata_service_is_refused(monkeypatch):
    # The machine has no DNS to point a name at 169.254.169.254, so the resolver answers as one would.
    real = egress.socket.getaddrinfo

    def resolver(host, port, *args, **kwargs):
        if host == "rebind.example":
            return [(egress.socket.AF_INET, egress.socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(egress.socket, "getaddrinfo", resolver)
    assert egress.url_problem("http://rebind.example/v1") == (
        "rebind.example resolves to 169.254.169.254: 169.254.169.254 is on the deny list (LLM_ENDPOINT_DENIED_HOSTS)")


def test_a_name_that_does_not_resolve_is_left_to_the_call():
    assert egress.url_problem("https://no-such-host.invalid/v1") is None


def test_endpoint_model_refuses_a_metadata_url_with_a_message_on_base_url():
    with pytest.raises(ValidationError) as caught:
        make_endpoint("http://169.254.169.254/latest/meta-data/")
    assert "169.254.169.254" in caught.value.message_dict["base_url"][0]
    assert not Endpoint.objects.exists()


def test_endpoint_api_refuses_a_metadata_url_and_writes_nothing(api):
    response = api.post("/api/endpoints/", {"name": "sneaky", "base_url": "http://169.254.169.254/v1",
                                            "default_model": "m", "api_key": "sk-x"}, format="json")
    assert response.status_code == 400
    assert "not allowed" in response.json()["base_url"][0]
    assert not Endpoint.objects.exists()


def test_endpoint_api_refuses_moving_an_endpoint_to_an_admin_port(api):
    endpoint = make_endpoint("http://10.0.0.5:8000/v1")
    response = api.patch(f"/api/endpoints/{endpoint.pk}/", {"base_url": "http://10.0.0.5:6379/v1"}, format="json")
    assert response.status_code == 400
    endpoint.refresh_from_db()
    assert endpoint.base_url == "http://10.0.0.5:8000/v1"


@pytest.mark.django_db(transaction=True)
async def test_a_call_to_an_endpoint_that_became_forbidden_is_refused_before_any_request(fake_llm):
    from asgiref.sync import sync_to_async

    from llm import client

    config = client.EndpointConfig.from_endpoint(await sync_to_async(make_endpoint)(fake_llm.base_url))
    messages = [{"role": "user", "content": "hi"}]
    assert (await client.complete(config, model="gpt-4o-mini", messages=messages)).text
    pool._egress_checked.clear()  # the check is cached for a minute; expire it now
    with override_settings(LLM_ENDPOINT_ALLOW_LOOPBACK=False):
        with pytest.raises(client.LLMError) as refused:
            await client.complete(config, model="gpt-4o-mini", messages=messages)
    assert refused.value.kind == "forbidden_address" and not refused.value.retryable
    assert "loopback" in refused.value.message
    assert fake_llm.stats()["chat_requests"] == 1
    pool._egress_checked.clear()


# --- private networks ------------------------------------------------------------------------------
@override_settings(LLM_ENDPOINT_ALLOW_PRIVATE=False, LLM_ENDPOINT_ALLOW_LOOPBACK=False)
@pytest.mark.parametrize("url", [
    "http://10.0.0.5:8000/v1", "http://172.16.1.1/v1", "http://192.168.1.10/v1", "http://100.64.0.1/v1",
    "http://192.0.0.8/v1", "http://[fc00::1]/v1", "http://[fd12:3456::1]/v1",
    "http://[::ffff:10.0.0.1]/v1",        # v4-mapped
    "http://[2002:a00:1::]/v1",           # 6to4 of 10.0.0.1
    "http://[2002:7f00:1::]/v1",          # 6to4 of 127.0.0.1
    "http://[64:ff9b::c0a8:101]/v1",      # NAT64 of 192.168.1.1
    "http://[::10.0.0.1]/v1",             # IPv4-compatible
])
def test_private_networks_and_their_ipv6_forms_are_refused_outside_debug(url):
    assert egress.url_problem(url) is not None


@pytest.mark.parametrize("url", ["http://[64:ff9b::a9fe:a9fe]/v1", "http://[2002:a9fe:a9fe::]/v1"])
def test_the_metadata_service_behind_nat64_or_6to4_is_refused_even_in_debug(url):
    assert "169.254.169.254" in egress.url_problem(url)


@override_settings(LLM_ENDPOINT_ALLOW_PRIVATE=False, LLM_ENDPOINT_ALLOW_LOOPBACK=False,
                   LLM_ENDPOINT_ALLOWED_NETWORKS=["10.20.0.0/16", "fd00:1::/32", "llm.corp.example"])
def test_allowed_networks_and_hosts_may_be_private(monkeypatch):
    real = egress.socket.getaddrinfo

    def resolver(host, port, *args, **kwargs):
        if host in ("llm.corp.example", "other.corp.example"):
            return [(egress.socket.AF_INET, egress.socket.SOCK_STREAM, 6, "", ("10.99.0.1", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(egress.socket, "getaddrinfo", resolver)
    assert egress.url_problem("http://10.20.3.4:8000/v1") is None
    assert egress.url_problem("http://[fd00:1::5]/v1") is None
    assert egress.url_problem("http://llm.corp.example/v1") is None
    assert "private network" in egress.url_problem("http://10.30.0.1/v1")
    assert "private network" in egress.url_problem("http://other.corp.example/v1")
    assert "not an LLM API" in egress.url_problem("http://10.20.3.4:6379/v1")


def test_private_networks_are_refused_by_default_outside_debug():
    code = ("import django; django.setup(); from django.conf import settings; "
            "print(settings.LLM_ENDPOINT_ALLOW_PRIVATE, settings.LLM_ENDPOINT_ALLOWED_NETWORKS)")
    env = {**os.environ, "DEBUG": "0", "SECRET_KEY": "x" * 50, "METRICS_TOKEN": "t",
           "DJANGO_SETTINGS_MODULE": "orchestrator.settings", "LLM_ENDPOINT_ALLOWED_NETWORKS": "10.1.0.0/16,llm.lan"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "['10.1.0.0/16',", "'llm.lan']"]


# --- redirects and DNS rebinding, through the real client -------------------------------------------
SECRET = "SECRET-FROM-THE-DOCKER-DAEMON"


class _Listener:
    """A real HTTP server on 127.0.0.1 that answers every request with one fixed response."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body
        self.requests: list[bytes] = []
        self.port = 0

    async def _serve(self, reader, writer) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), b"0"))
        if length:
            await reader.readexactly(length)
        self.requests.append(head)
        lines = [f"HTTP/1.1 {self.status} X", *(f"{k}: {v}" for k, v in self.headers.items()),
                 f"Content-Length: {len(self.body)}", "Connection: close", "", ""]
        writer.write("\r\n".join(lines).encode() + self.body)
        await writer.drain()
        writer.close()

    async def start(self) -> "_Listener":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self


async def _listeners(status: int):
    secret_body = json.dumps({"object": "list", "data": [{"id": SECRET, "object": "model"}],
                              "choices": [{"index": 0, "message": {"role": "assistant", "content": SECRET},
                                           "finish_reason": "stop"}]}).encode()
    secret = await _Listener(200, {"Content-Type": "application/json"}, secret_body).start()
    bouncer = await _Listener(status, {"Location": f"http://127.0.0.1:{secret.port}/v1/chat/completions",
                                       "Content-Type": "text/plain"}, b"see other").start()
    return bouncer, secret


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("status", [303, 307])
async def test_a_redirect_to_a_denied_port_is_not_followed(status):
    from llm import client

    bouncer, secret = await _listeners(status)
    config = client.EndpointConfig(id=90_001 + status, name="bouncer", base_url=f"http://127.0.0.1:{bouncer.port}/v1",
                                   api_key="sk-bounce", max_retries=2)
    try:
        with override_settings(LLM_ENDPOINT_DENIED_PORTS=[secret.port]):
            with pytest.raises(client.LLMError) as caught:
                await client.complete(config, model="m", messages=[{"role": "user", "content": "hi"}])
    finally:
        await client.aclose_all()
    assert caught.value.kind == "redirect" and not caught.value.retryable
    assert "redirects are not followed" in caught.value.message
    assert SECRET not in caught.value.message
    assert len(bouncer.requests) == 1 and secret.requests == []


@pytest.mark.django_db(transaction=True)
async def test_the_connectivity_test_does_not_follow_a_redirect_either():
    from llm import client, diagnostics

    bouncer, secret = await _listeners(302)
    config = client.EndpointConfig(id=90_100, name="bouncer", base_url=f"http://127.0.0.1:{bouncer.port}/v1",
                                   api_key="sk-bounce")
    try:
        with override_settings(LLM_ENDPOINT_DENIED_PORTS=[secret.port]):
            report = await diagnostics.connectivity_test(config, model="m")
    finally:
        await client.aclose_all()
    assert not report.ok
    assert SECRET not in str(report.as_dict())
    assert secret.requests == []


@pytest.mark.django_db(transaction=True)
async def test_a_name_that_resolves_to_a_forbidden_address_at_connect_time_is_not_connected_to(fake_llm, monkeypatch):
    """The check passed when the name was public; by the time of the call it points at loopback."""
    from llm import client

    real = egress.socket.getaddrinfo

    def resolver(host, port, *args, **kwargs):
        if host == "rebind.example":
            return real("127.0.0.1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(egress.socket, "getaddrinfo", resolver)
    base_url = fake_llm.base_url.replace("127.0.0.1", "rebind.example")
    config = client.EndpointConfig(id=90_200, name="rebind", base_url=base_url, api_key="sk-rebind", max_retries=2)
    pool._egress_checked[base_url] = time.monotonic()  # the check at save/call time saw a public address
    try:
        with override_settings(LLM_ENDPOINT_ALLOW_LOOPBACK=False):
            with pytest.raises(client.LLMError) as caught:
                await client.complete(config, model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    finally:
        pool._egress_checked.clear()
        await client.aclose_all()
    assert caught.value.kind == "forbidden_address" and not caught.value.retryable
    assert "rebind.example resolves to 127.0.0.1" in caught.value.message
    assert fake_llm.stats()["chat_requests"] == 0
