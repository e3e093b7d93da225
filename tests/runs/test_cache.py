"""The response cache, end to end: real runs over HTTP to the fake LLM server and the real database.

Hits and misses, what a hit saved, time to live, what is never cached (errors, cut streams, invalid
structured output), streamed replay, "no cache" winning, two identical runs racing, endpoints kept
apart, the prune command, and the API's fields."""
import asyncio
import datetime
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from llm import client
from llm.cache import CachedAnswer, cache_store
from llm.models import CachedResponse
from prices.models import Price
from prices.services import price_save
from runs.engine import execute_run
from runs.models import Response, Run
from runs.retention import scheduled_prune_in_thread
from runs.services import run_start
from tests.factories import execute_watched, make_block, make_chain, make_endpoint, make_payload, make_workflow

pytestmark = pytest.mark.django_db(transaction=True)
TTL = 600


@sync_to_async
def chain(base_url: str, *, name: str = "article", endpoint=None, **payload_fields):
    return make_chain(endpoint or make_endpoint(base_url), name=name, **payload_fields)


@sync_to_async
def start(workflow, *, topic: str = "tides", cache_mode: str | None = None) -> Run:
    return run_start(workflow=workflow, inputs={"topic": topic}, user=None, cache_mode=cache_mode)


async def run_once(workflow, **options) -> tuple[Run, list[Response]]:
    run = await start(workflow, **options)
    await execute_run(run.pk)
    run = await Run.objects.aget(pk=run.pk)
    return run, [r async for r in Response.objects.filter(run_id=run.pk).order_by("index")]


def finish(workflow, **options) -> None:
    """A run to its end from sync code, its LLM clients closed on the loop that made them."""
    async def run_and_close() -> None:
        await run_once(workflow, **options)
        await client.aclose_all()

    async_to_sync(run_and_close)()


def execute(run_id: int) -> None:
    async def run_and_close() -> None:
        await execute_run(run_id)
        await client.aclose_all()

    async_to_sync(run_and_close)()


async def entries() -> int:
    return await CachedResponse.objects.acount()


@sync_to_async
def usd_price() -> Price:
    return price_save(Price(model="gpt-4o-mini", match="exact", effective_from=timezone.now() - datetime.timedelta(days=1),
                            input_per_million=Decimal("0.15"), output_per_million=Decimal("0.60"), currency="USD"))


async def test_an_identical_run_is_answered_from_the_cache_and_says_what_it_saved(fake_llm):
    await usd_price()
    workflow = await chain(fake_llm.base_url, cache_ttl_seconds=TTL)
    first, called = await run_once(workflow)
    assert first.status == "succeeded" and fake_llm.stats()["chat_requests"] == 3
    assert [r.cache_status for r in called] == ["miss"] * 3 and await entries() == 3

    second, cached = await run_once(workflow)
    assert second.status == "succeeded" and second.output == first.output
    assert fake_llm.stats()["chat_requests"] == 3  # no call at all
    for hit, original in zip(cached, called, strict=True):
        assert hit.cache_status == "hit" and hit.output == original.output and hit.messages == original.messages
        assert hit.prompt_tokens == hit.completion_tokens == 0 and hit.attempts == []
        assert (hit.cache_saved_prompt_tokens, hit.cache_saved_completion_tokens) == (
            original.prompt_tokens, original.completion_tokens)
        assert hit.cost_nano == 0
        assert original.cost_nano > 0 and (hit.cache_saved_cost_nano, hit.cache_saved_cost_currency) == (
            original.cost_nano, "USD")
        assert hit.cache_saved_latency_ms == original.latency_ms and hit.cache_stored_at is not None
    assert second.prompt_tokens == second.completion_tokens == 0


async def test_nothing_is_cached_by_default(fake_llm):
    workflow = await chain(fake_llm.base_url)
    for _ in range(2):
        _, responses = await run_once(workflow)
        assert [r.cache_status for r in responses] == [None] * 3
    assert fake_llm.stats()["chat_requests"] == 6 and await entries() == 0


async def test_a_run_that_asks_for_the_cache_caches_payloads_without_a_ttl_for_the_default_time(fake_llm):
    workflow = await chain(fake_llm.base_url)
    await run_once(workflow, cache_mode="use")
    _, responses = await run_once(workflow, cache_mode="use")
    assert [r.cache_status for r in responses] == ["hit"] * 3 and fake_llm.stats()["chat_requests"] == 3
    entry = await CachedResponse.objects.afirst()
    assert entry.expires_at - entry.created_at == datetime.timedelta(seconds=settings.LLM_CACHE_TTL_SECONDS)
    # A run that does not ask uses nothing: these payloads set no time to live.
    _, responses = await run_once(workflow)
    assert [r.cache_status for r in responses] == [None] * 3 and fake_llm.stats()["chat_requests"] == 6


async def test_no_cache_wins_over_the_payloads_ttl(fake_llm):
    workflow = await chain(fake_llm.base_url, cache_ttl_seconds=TTL)
    await run_once(workflow)
    run, responses = await run_once(workflow, cache_mode="off")
    assert run.cache_mode == "off" and [r.cache_status for r in responses] == [None] * 3
    assert fake_llm.stats()["chat_requests"] == 6


async def test_an_expired_answer_is_not_used_and_is_replaced(fake_llm):
    workflow = await chain(fake_llm.base_url, cache_ttl_seconds=TTL)
    await run_once(workflow)
    await CachedResponse.objects.aupdate(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    _, responses = await run_once(workflow)
    assert [r.cache_status for r in responses] == ["miss"] * 3 and fake_llm.stats()["chat_requests"] == 6
    assert await entries() == 3
    assert await CachedResponse.objects.filter(expires_at__gt=timezone.now()).acount() == 3


async def test_errors_are_never_cached(fake_llm):
    workflow = await chain(fake_llm.base_url, endpoint=await sync_to_async(make_endpoint)(fake_llm.base_url, max_retries=0),
                           cache_ttl_seconds=TTL)
    fake_llm.fail_next({"status": 500})
    run, [failed] = await run_once(workflow)
    assert run.status == "failed" and failed.cache_status == "miss" and await entries() == 0
    _, responses = await run_once(workflow)
    assert responses[0].cache_status == "miss" and fake_llm.stats()["chat_requests"] == 4


async def test_a_cut_stream_is_never_cached(fake_llm):
    workflow = await chain(fake_llm.base_url, endpoint=await sync_to_async(make_endpoint)(fake_llm.base_url, max_retries=0),
                           stream=True, cache_ttl_seconds=TTL)
    fake_llm.fail_next({"cut_stream_after": 3})
    run, [cut] = await run_once(workflow)
    assert run.status == "failed" and cut.output  # part of the answer arrived, and was kept on the step only
    assert await entries() == 0


async def test_a_streamed_payload_replays_the_cached_answer_as_deltas(fake_llm):
    workflow = await chain(fake_llm.base_url, stream=True, cache_ttl_seconds=TTL)
    await run_once(workflow)
    run = await start(workflow)
    status, seen = await execute_watched(run.pk)
    assert status == "succeeded"
    assert fake_llm.stats()["chat_requests"] == 3
    for response in [r async for r in Response.objects.filter(run_id=run.pk).order_by("index")]:
        deltas = [e for e in seen if e["type"] == "step.delta" and e["index"] == response.index]
        assert deltas and "".join(d["text"] for d in deltas) == response.output
        [completed] = [e for e in seen if e["type"] == "step.completed" and e["index"] == response.index]
        assert completed["cache_status"] == "hit" and completed["cache_saved_completion_tokens"] == 20


SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}, "points": {"type": "integer"}},
          "required": ["title", "points"]}


@sync_to_async
def structured(base_url: str, retries: int):
    payload = make_payload("outline", make_endpoint(base_url), [("user", make_block("o", "Outline {{ topic }}"))],
                           json_schema=SCHEMA, structured_retries=retries, cache_ttl_seconds=TTL)
    return make_workflow("structured", [("outline", payload)])


async def test_structured_output_is_cached_only_once_valid_and_comes_back_as_json(fake_llm):
    workflow = await structured(fake_llm.base_url, retries=1)
    fake_llm.fail_next({"content": '{"title": "x"}'})  # invalid, then asked again
    _, [first] = await run_once(workflow)
    assert first.status == "succeeded" and len(first.attempts) == 2
    entry = await CachedResponse.objects.aget()
    assert entry.text == first.output != '{"title": "x"}'
    _, [hit] = await run_once(workflow)
    assert hit.cache_status == "hit" and hit.output_json == first.output_json and hit.output_json["points"] >= 0


async def test_structured_output_that_never_matched_its_schema_is_not_cached(fake_llm):
    workflow = await structured(fake_llm.base_url, retries=1)
    fake_llm.fail_next(*[{"content": '{"title": "x"}'}] * 2)
    run, _ = await run_once(workflow)
    assert run.status == "failed" and await entries() == 0


async def test_two_identical_runs_racing_on_an_empty_cache_both_call_and_one_answer_is_kept(fake_llm):
    # Slow answers: both runs look up (and find nothing) before either has an answer to store.
    fake_llm.control(latency_ms=1000)
    endpoint = await sync_to_async(make_endpoint)(fake_llm.base_url)
    payload = await sync_to_async(make_payload)("one", endpoint, [("user", await sync_to_async(make_block)("b", "Say {{ topic }}"))],
                                                 cache_ttl_seconds=TTL)
    workflow = await sync_to_async(make_workflow)("one-step", [("said", payload)])
    runs = [await start(workflow), await start(workflow)]
    assert await asyncio.gather(*(execute_run(run.pk) for run in runs)) == ["succeeded", "succeeded"]
    assert fake_llm.stats()["chat_requests"] == 2 and await entries() == 1
    responses = [r async for r in Response.objects.filter(run_id__in=[r.pk for r in runs])]
    assert len(responses) == 2
    assert all(r.status == "succeeded" and r.cache_status == "miss" and r.completion_tokens == 20 for r in responses)
    assert responses[0].output == responses[1].output == (await CachedResponse.objects.aget()).text
    _, [hit] = await run_once(workflow)
    assert hit.cache_status == "hit" and fake_llm.stats()["chat_requests"] == 2


def test_storing_under_a_key_already_stored_keeps_the_first_answer():
    endpoint = make_endpoint()
    now = timezone.now()
    answers = [CachedAnswer(text=text, reasoning="", finish_reason="stop", prompt_tokens=1, completion_tokens=2,
                            reasoning_tokens=None, cached_tokens=None, tokens_estimated=False, reported_cost=None,
                            latency_ms=5, created_at=now) for text in ("first", "second")]
    assert cache_store(key="k" * 64, endpoint_id=endpoint.pk, model="m", answer=answers[0], ttl_seconds=60) is True
    assert cache_store(key="k" * 64, endpoint_id=endpoint.pk, model="m", answer=answers[1], ttl_seconds=60) is False
    assert [e.text for e in CachedResponse.objects.all()] == ["first"]


async def test_another_endpoint_at_the_same_address_never_gets_the_answer(fake_llm):
    # Two endpoints on one server with their own keys (say, two teams' accounts): identical requests,
    # but an answer made through one is never given to a run on the other.
    ours = await sync_to_async(make_endpoint)(fake_llm.base_url, name="ours", api_key="sk-ours-secret")
    theirs = await sync_to_async(make_endpoint)(fake_llm.base_url, name="theirs", api_key="sk-theirs-secret")
    await run_once(await chain(fake_llm.base_url, name="ours", endpoint=ours, cache_ttl_seconds=TTL))
    _, responses = await run_once(await chain(fake_llm.base_url, name="theirs", endpoint=theirs, cache_ttl_seconds=TTL))
    assert [r.cache_status for r in responses] == ["miss"] * 3 and fake_llm.stats()["chat_requests"] == 6
    assert await entries() == 6
    # And no API key is stored with an answer.
    async for entry in CachedResponse.objects.all():
        stored = " ".join(str(getattr(entry, f.attname)) for f in CachedResponse._meta.concrete_fields)
        assert "secret" not in stored


def test_a_user_who_may_not_start_runs_gets_no_cached_answer(fake_llm, api_with_perms):
    workflow = make_chain(make_endpoint(fake_llm.base_url), cache_ttl_seconds=TTL)
    finish(workflow)
    viewer = api_with_perms("runs.view_run")
    response = viewer.post(f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": "tides"}}, format="json")
    assert response.status_code == 403 and Run.objects.count() == 1


def test_the_prune_command_deletes_expired_answers_only(capsys):
    endpoint = make_endpoint()
    now = timezone.now()
    for index, expires in enumerate([now - datetime.timedelta(hours=1), now - datetime.timedelta(seconds=1),
                                     now + datetime.timedelta(hours=1)]):
        CachedResponse.objects.create(key=f"{index:064d}", endpoint=endpoint, model="m", text="t",
                                      created_at=now - datetime.timedelta(days=1), expires_at=expires)
    call_command("cache_prune")
    assert "2 expired" in capsys.readouterr().out
    assert list(CachedResponse.objects.values_list("key", flat=True)) == [f"{2:064d}"]


def test_the_hourly_prune_deletes_expired_answers_even_with_runs_kept_for_ever(settings):
    settings.RUNS_PRUNE_OLDER_THAN_DAYS = 0
    endpoint = make_endpoint()
    now = timezone.now()
    for index, expires in enumerate([now - datetime.timedelta(seconds=1), now + datetime.timedelta(hours=1)]):
        CachedResponse.objects.create(key=f"{index:064d}", endpoint=endpoint, model="m", text="t", created_at=now,
                                      expires_at=expires)
    scheduled_prune_in_thread()
    assert list(CachedResponse.objects.values_list("key", flat=True)) == [f"{1:064d}"]


def test_the_api_starts_a_run_with_a_cache_choice_and_shows_each_steps_cache_fields(api, fake_llm):
    workflow = make_chain(make_endpoint(fake_llm.base_url), cache_ttl_seconds=TTL)
    bad = api.post(f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": "x"}, "cache_mode": "maybe"}, format="json")
    assert bad.status_code == 400 and "cache_mode" in bad.json() and Run.objects.count() == 0
    ids = []
    for mode in ("use", "use"):
        created = api.post(f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": "x"}, "cache_mode": mode},
                           format="json")
        assert created.status_code == 201 and created.json()["cache_mode"] == mode
        ids.append(created.json()["id"])
        execute(ids[-1])
    detail = api.get(f"/api/runs/{ids[1]}/").json()
    step = detail["responses"][0]
    assert step["cache_status"] == "hit" and step["prompt_tokens"] == 0 and step["cache_saved_completion_tokens"] == 20
    assert {"cache_saved_prompt_tokens", "cache_saved_cost", "cache_saved_cost_currency", "cache_saved_latency_ms",
            "cache_stored_at"} <= set(step)
    assert api.get(f"/api/runs/{ids[0]}/").json()["responses"][0]["cache_status"] == "miss"


def test_the_run_page_shows_a_hit_apart_with_what_it_saved(user_client, fake_llm):
    workflow = make_chain(make_endpoint(fake_llm.base_url), cache_ttl_seconds=TTL)
    finish(workflow)
    finish(workflow)
    called, hit = Run.objects.order_by("pk")
    page = user_client.get(reverse("run-detail", args=[hit.pk])).content.decode()
    saved = hit.responses.get(index=0).cache_saved_completion_tokens
    assert page.count("Cache lookup") == 3 and "saved " in page and f" · {saved} out" in page
    assert "Cache lookup" not in user_client.get(reverse("run-detail", args=[called.pk])).content.decode()


def test_the_run_form_passes_the_cache_choice(user_client, fake_llm):
    workflow = make_chain(make_endpoint(fake_llm.base_url))
    response = user_client.post(reverse("run-start", args=[workflow.pk]), {"topic": "x", "run_cache_mode": "off"})
    assert response.status_code == 302
    assert Run.objects.get().cache_mode == "off"
