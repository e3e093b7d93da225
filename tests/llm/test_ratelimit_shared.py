"""The limits as distributed mode keeps them: two pacers with their own local state stand for two
processes, sharing the endpoint's row in the database. And the limits as a person sets them."""
import asyncio
import time

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from llm import ratelimit
from llm.config import EndpointConfig
from llm.models import Endpoint, EndpointAllowance
from tests.factories import make_endpoint

CLOCK_SLACK = 0.02
REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


async def turns(pacer: ratelimit.Pacer, count: int) -> list[float]:
    """When each of `count` calls, all waiting at once, was let go."""
    async def one() -> float:
        await pacer.wait_turn(REQUEST)
        return time.time()
    return list(await asyncio.gather(*(one() for _ in range(count))))


@pytest.mark.django_db(transaction=True)
async def test_two_processes_sharing_the_row_stay_within_the_total() -> None:
    endpoint = await asyncio.to_thread(make_endpoint, requests_per_minute=600)  # 10 a second, a burst of 30
    first = ratelimit.Pacer(endpoint.pk, 600, shared=True)
    second = ratelimit.Pacer(endpoint.pk, 600, shared=True)
    began = time.time()
    calls = await asyncio.gather(turns(first, 30), turns(second, 30))
    times = sorted(calls[0] + calls[1])
    # Each process alone would let its 30 go at once; together they get what the row grants:
    # 30 at once, then 10 a second.
    for j, at in enumerate(times):
        assert at >= began + max(0, j + 1 - 30) / 10 - CLOCK_SLACK, (j, at - began)
    row = await EndpointAllowance.objects.aget(pk=endpoint.pk)
    assert row.request_tat >= began + 3


@pytest.mark.django_db(transaction=True)
async def test_a_pause_in_one_process_holds_back_the_next_call_of_another() -> None:
    endpoint = await asyncio.to_thread(make_endpoint, requests_per_minute=60)
    here = ratelimit.Pacer(endpoint.pk, 60, shared=True)
    there = ratelimit.Pacer(endpoint.pk, 60, shared=True)
    await turns(there, 1)  # it has used what it reserved
    until = time.time() + 1.0
    await here.pause(until)
    assert (await EndpointAllowance.objects.aget(pk=endpoint.pk)).paused_until == pytest.approx(until)
    [at] = await turns(there, 1)
    assert at >= until - CLOCK_SLACK
    assert there.paused_until == pytest.approx(until)


@pytest.mark.django_db(transaction=True)
async def test_an_endpoint_without_limits_reads_a_pause_of_another_process() -> None:
    endpoint = await asyncio.to_thread(make_endpoint)
    here = ratelimit.Pacer(endpoint.pk, shared=True)
    there = ratelimit.Pacer(endpoint.pk, shared=True)
    await turns(there, 1)
    until = time.time() + ratelimit.SLICE_SECONDS * 1.5 + 1.0
    await here.pause(until)
    # What `there` read holds for SLICE_SECONDS and a half; its next call then reads the row again.
    await asyncio.sleep(ratelimit.SLICE_SECONDS * 1.5)
    assert there.paused_until == 0.0
    [at] = await turns(there, 1)
    assert there.paused_until == pytest.approx(until)
    assert at >= until - CLOCK_SLACK


@pytest.mark.django_db
def test_the_limits_reach_the_call() -> None:
    endpoint = make_endpoint(requests_per_minute=90, tokens_per_minute=40_000)
    config = EndpointConfig.from_endpoint(Endpoint.objects.get(pk=endpoint.pk))
    assert (config.requests_per_minute, config.tokens_per_minute) == (90, 40_000)
    pacer = ratelimit.pacer_for(config)
    assert pacer is not None and pacer.limits == (90, 40_000)


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["requests_per_minute", "tokens_per_minute"])
@pytest.mark.parametrize("value", [0, -5, "fast"])
def test_the_api_refuses_a_limit_that_is_not_positive_naming_the_field(api: APIClient, field: str, value: object) -> None:
    response = api.post("/api/endpoints/", {"name": "local", "base_url": "http://127.0.0.1:8001/v1",
                                            "default_model": "gpt-4o-mini", field: value}, format="json")
    assert response.status_code == 400
    assert field in response.data, response.data
    assert not Endpoint.objects.exists()


@pytest.mark.django_db
def test_the_api_sets_and_clears_the_limits(api: APIClient) -> None:
    response = api.post("/api/endpoints/", {"name": "local", "base_url": "http://127.0.0.1:8001/v1",
                                            "default_model": "gpt-4o-mini", "requests_per_minute": 500}, format="json")
    assert response.status_code == 201, response.data
    assert (response.data["requests_per_minute"], response.data["tokens_per_minute"]) == (500, None)
    patched = api.patch(f"/api/endpoints/{response.data['id']}/", {"requests_per_minute": None,
                                                                    "tokens_per_minute": 90_000}, format="json")
    assert patched.status_code == 200, patched.data
    assert Endpoint.objects.values_list("requests_per_minute", "tokens_per_minute").get() == (None, 90_000)


FORM = {"name": "local", "base_url": "http://127.0.0.1:8001/v1", "default_model": "gpt-4o-mini", "enabled": "on",
        "timeout_seconds": "60", "max_retries": "3", "max_concurrency": "64", "headers": ""}


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["requests_per_minute", "tokens_per_minute"])
def test_the_page_refuses_a_limit_of_zero_next_to_the_field(user_client: Client, field: str) -> None:
    response = user_client.post(reverse("endpoint-new"), {**FORM, field: "0"})
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert not Endpoint.objects.exists()
    saved = user_client.post(reverse("endpoint-new"), {**FORM, field: "120"})
    assert saved.status_code == 302
    assert getattr(Endpoint.objects.get(), field) == 120


@pytest.mark.django_db
def test_the_admin_edits_the_limits(user_client: Client) -> None:
    endpoint = make_endpoint(name="local")
    page = user_client.get(reverse("admin:llm_endpoint_change", args=[endpoint.pk])).content.decode()
    assert 'name="requests_per_minute"' in page and 'name="tokens_per_minute"' in page
