"""Endpoint URLs cannot reach the server's metadata service, admin ports or (outside DEBUG) itself."""
import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from llm import egress
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
    client._egress_checked.clear()  # the check is cached for a minute; expire it now
    with override_settings(LLM_ENDPOINT_ALLOW_LOOPBACK=False):
        with pytest.raises(client.LLMError) as refused:
            await client.complete(config, model="gpt-4o-mini", messages=messages)
    assert refused.value.kind == "forbidden_address" and not refused.value.retryable
    assert "loopback" in refused.value.message
    assert fake_llm.stats()["chat_requests"] == 1
    client._egress_checked.clear()
