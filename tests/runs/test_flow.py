"""Issue 22: steps that run side by side by data flow, `when`, and `for_each` maps, over real HTTP to
the fake LLM server, each unit committed under the run's lease."""
import asyncio
import json

import pytest
from asgiref.sync import sync_to_async

from runs.engine import dbthread, execute_run, runner
from runs.models import Response, Run
from runs.services import run_cancel, run_start
from tests.factories import execute_watched, make_block, make_endpoint, make_payload
from workflows.models import Step, Workflow
from workflows.services import workflow_problems, workflow_warnings

pytestmark = pytest.mark.django_db(transaction=True)


def build(base_url: str, steps: list[dict], *, inputs: list[str], max_parallel: int = 4, **endpoint) -> Workflow:
    """A workflow of steps given as {"key", "prompt", plus Step fields}; each its own payload."""
    endpoint = make_endpoint(base_url, **endpoint)
    workflow = Workflow.objects.create(name="flow", inputs=[{"name": name} for name in inputs], max_parallel=max_parallel)
    for position, spec in enumerate(steps):
        spec = dict(spec)
        key, prompt = spec.pop("key"), spec.pop("prompt")
        payload_fields = spec.pop("payload", {})
        payload = make_payload(f"p-{key}", endpoint, [("user", make_block(f"b-{key}", prompt))], **payload_fields)
        Step.objects.create(workflow=workflow, payload=payload, output_key=key, position=position, **spec)
    return workflow


@sync_to_async
def start(workflow: Workflow, **inputs: str) -> Run:
    return run_start(workflow=workflow, inputs=inputs, user=None)


async def rows(run: Run) -> list[Response]:
    return [r async for r in Response.objects.filter(run_id=run.pk).order_by("index", "item")]


FAN_OUT = [
    {"key": "short", "prompt": "Summarise {{ doc }} in one line."},
    {"key": "bullets", "prompt": "Summarise {{ doc }} as bullets."},
    {"key": "tweet", "prompt": "Summarise {{ doc }} as a tweet."},
    {"key": "title", "prompt": "A title for {{ doc }}."},
    {"key": "pick", "prompt": "Pick the best: {{ short }} | {{ bullets }} | {{ tweet }} | {{ title }}"},
]


async def test_steps_that_read_only_inputs_run_side_by_side_and_the_join_waits_for_all(fake_llm):
    fake_llm.control(latency_ms=300)
    workflow = await sync_to_async(build)(fake_llm.base_url, FAN_OUT, inputs=["doc"])
    run = await start(workflow, doc="tides")
    assert await execute_run(run.pk) == "succeeded"
    stats = fake_llm.stats()
    assert stats["chat_requests"] == 5
    assert stats["inflight_max"] == 4  # the four summaries at once; the join alone after them
    found = await rows(run)
    assert [(r.index, r.item, r.status) for r in found] == [(i, 0, "succeeded") for i in range(5)]
    pick = found[4]
    assert all(r.output in pick.messages[0]["content"] for r in found[:4])
    run = await Run.objects.aget(pk=run.pk)
    assert run.output == pick.output and run.next_step == 5
    assert run.completion_tokens == sum(r.completion_tokens for r in found)


async def test_the_workflow_limit_caps_steps_in_flight(fake_llm):
    fake_llm.control(latency_ms=200)
    workflow = await sync_to_async(build)(fake_llm.base_url, FAN_OUT, inputs=["doc"], max_parallel=2)
    run = await start(workflow, doc="tides")
    assert await execute_run(run.pk) == "succeeded"
    assert fake_llm.stats()["inflight_max"] == 2


WHEN = [
    {"key": "translated", "prompt": "Translate to English: {{ text }}", "when": 'language != "en"',
     "default": "(already English)"},
    {"key": "answer", "prompt": "Answer: {{ translated }}"},
]


@pytest.mark.parametrize(("language", "skipped"), [("en", True), ("fr", False)])
async def test_when_false_skips_the_step_without_a_call_and_later_steps_read_its_default(fake_llm, language, skipped):
    workflow = await sync_to_async(build)(fake_llm.base_url, WHEN, inputs=["text", "language"])
    run = await start(workflow, text="bonjour", language=language)
    status, seen = await execute_watched(run.pk)
    assert status == "succeeded"
    first, second = await rows(run)
    if skipped:
        assert first.status == "skipped" and first.output == "(already English)"
        assert first.prompt_tokens == first.completion_tokens == 0 and first.attempts == [] and first.cost_nano == 0
        assert second.messages[0]["content"] == "Answer: (already English)"
        assert fake_llm.stats()["chat_requests"] == 1
        assert next(e["type"] for e in seen if e["type"].startswith("step.")) == "step.skipped"
    else:
        assert first.status == "succeeded" and "Translate to English: bonjour" in first.messages[0]["content"]
        assert fake_llm.stats()["chat_requests"] == 2


def mapped(**fields) -> list[dict]:
    return [
        {"key": "checks", "prompt": "Check the claim: {{ claim }}", "for_each": "claims", "item_as": "claim", **fields},
        {"key": "report", "prompt": "Report: {{ checks | join(' / ') }}"},
    ]


CLAIMS = json.dumps(["the sea is salty", "tides follow the moon", "waves are fish", "the sky is green", "ice floats"])


async def test_for_each_runs_once_per_item_up_to_max_parallel_and_gives_the_list(fake_llm):
    fake_llm.control(latency_ms=200)
    workflow = await sync_to_async(build)(fake_llm.base_url, mapped(max_parallel=2), inputs=["claims"])
    run = await start(workflow, claims=CLAIMS)
    status, seen = await execute_watched(run.pk)
    assert status == "succeeded"
    assert fake_llm.stats()["inflight_max"] == 2
    found = await rows(run)
    items = [r for r in found if r.index == 0 and r.item]
    assert [(r.item, r.item_value) for r in items] == list(enumerate(json.loads(CLAIMS), start=1))
    assert all(f"Check the claim: {r.item_value}" == r.messages[0]["content"] for r in items)
    step = next(r for r in found if (r.index, r.item) == (0, 0))
    assert step.status == "succeeded" and step.output_json == [r.output for r in items] and step.attempts == []
    report = next(r for r in found if r.index == 1)
    assert report.messages[0]["content"] == "Report: " + " / ".join(r.output for r in items)
    started = [e for e in seen if e["type"] == "step.started" and e["index"] == 0]
    assert sorted(e["item"] for e in started) == [1, 2, 3, 4, 5] and {e["item_count"] for e in started} == {5}
    run = await Run.objects.aget(pk=run.pk)
    assert run.completion_tokens == sum(r.completion_tokens for r in found)


@pytest.mark.parametrize("policy", ["fail", "skip", "null"])
async def test_a_failed_item_follows_the_on_error_policy(fake_llm, policy):
    fake_llm.fail_next({}, {"status": 400, "message": "bad item"})  # items run one at a time: item 2 fails
    workflow = await sync_to_async(build)(fake_llm.base_url, mapped(max_parallel=1, on_error=policy),
                                          inputs=["claims"])
    claims = ["a", "b", "c"]
    run = await start(workflow, claims=json.dumps(claims))
    status = await execute_run(run.pk)
    run = await Run.objects.aget(pk=run.pk)
    found = await rows(run)
    items = {r.item: r for r in found if r.index == 0 and r.item}
    assert items[2].status == "failed" and items[2].item_value == "b"
    if policy == "fail":
        assert status == "failed"
        assert run.error.startswith("Step 1 (checks) item 2 (b) failed:")
        assert 3 not in items  # nothing started after the failure
        assert next(r for r in found if (r.index, r.item) == (0, 0)).status == "failed"
    else:
        assert status == "succeeded"
        step = next(r for r in found if (r.index, r.item) == (0, 0))
        expected = [items[1].output, items[3].output] if policy == "skip" else [items[1].output, None, items[3].output]
        assert step.output_json == expected


async def test_for_each_on_something_that_is_not_a_list_fails_the_step_naming_it_and_the_value(fake_llm):
    workflow = await sync_to_async(build)(fake_llm.base_url, mapped(), inputs=["claims"])
    run = await start(workflow, claims="just one claim")
    assert await execute_run(run.pk) == "failed"
    run = await Run.objects.aget(pk=run.pk)
    assert run.error == "Step 1 (checks) failed: for_each 'claims' is not a list: just one claim"
    assert fake_llm.stats()["chat_requests"] == 0


async def test_a_map_over_more_items_than_allowed_fails_before_any_call(fake_llm, settings):
    settings.RUNS_MAP_MAX_ITEMS = 3
    workflow = await sync_to_async(build)(fake_llm.base_url, mapped(), inputs=["claims"])
    run = await start(workflow, claims=json.dumps(list(range(100_000))))
    assert await execute_run(run.pk) == "failed"
    run = await Run.objects.aget(pk=run.pk)
    assert "for_each 'claims' has 100,000 items, more than the 3 allowed (RUNS_MAP_MAX_ITEMS)" in run.error
    assert fake_llm.stats()["chat_requests"] == 0


async def test_a_map_over_a_field_of_structured_output(fake_llm):
    schema = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string"}}},
              "required": ["items"], "additionalProperties": False}
    steps = [{"key": "claims", "prompt": "List the claims of {{ doc }}", "payload": {"json_schema": schema}},
             {"key": "checks", "prompt": "Check: {{ claim }}", "for_each": "claims.items", "item_as": "claim"}]
    workflow = await sync_to_async(build)(fake_llm.base_url, steps, inputs=["doc"])
    run = await start(workflow, doc="tides")
    assert await execute_run(run.pk) == "succeeded"
    found = await rows(run)
    claims = found[0].output_json["items"]
    assert [r.item_value for r in found if r.index == 1 and r.item] == claims


async def test_cancel_stops_every_unit_in_flight(fake_llm):
    fake_llm.control(latency_ms=20_000)
    workflow = await sync_to_async(build)(fake_llm.base_url, mapped(max_parallel=3), inputs=["claims"])
    run = await start(workflow, claims=CLAIMS)
    task = asyncio.ensure_future(execute_run(run.pk))
    while fake_llm.stats()["inflight"] < 3:
        await asyncio.sleep(0.02)
    await sync_to_async(run_cancel)(run=run)
    runner.cancel_signal_deliver(run.pk)  # what the executor does on the run's loop
    assert await asyncio.wait_for(task, 2) == "cancelled"
    found = await rows(run)
    assert [(r.item, r.status) for r in found] == [(1, "cancelled"), (2, "cancelled"), (3, "cancelled")]


async def test_a_holder_that_dies_mid_map_leaves_the_rest_to_the_next_without_redoing_committed_items(fake_llm):
    fake_llm.control(latency_ms=100, log_requests=True)
    workflow = await sync_to_async(build)(fake_llm.base_url, mapped(max_parallel=2), inputs=["claims"])
    run = await start(workflow, claims=CLAIMS)
    task = asyncio.ensure_future(execute_run(run.pk, owner="dying:1"))
    while await Response.objects.filter(run_id=run.pk, item__gt=0).acount() < 2:
        await asyncio.sleep(0.01)
    task.cancel()  # the holder is gone: what it had in flight was never committed
    await asyncio.gather(task, return_exceptions=True)
    committed = {r.item: r.output async for r in Response.objects.filter(run_id=run.pk, item__gt=0)}
    # Its lease ran out: cleared on the ledger's thread, after any write the holder had queued there.
    await dbthread.call(Run.objects.filter(pk=run.pk).update, lease_owner="", lease_expires_at=None)
    status = await execute_run(run.pk, owner="next:1")
    assert status == "succeeded", await Run.objects.filter(pk=run.pk).avalues("status", "lease_owner", "next_step", "error")
    found = await rows(run)
    items = [r for r in found if r.index == 0 and r.item]
    assert [r.item for r in items] == [1, 2, 3, 4, 5]
    assert all(r.output == committed[r.item] for r in items if r.item in committed)
    prompts = [prompt for _, prompt in fake_llm.requests_logged()]
    for r in items:
        if r.item in committed:  # a committed item is never asked again
            assert prompts.count(f"Check the claim: {r.item_value}") == 1


def test_validation_names_the_step_and_the_field(fake_llm):
    steps = [
        {"key": "a", "prompt": "{{ text }}", "when": "{{ text ==", "default": ""},
        {"key": "b", "prompt": "{{ x }}", "for_each": "nowhere.items", "item_as": "x"},
        {"key": "c", "prompt": "{{ text }}", "for_each": "a", "item_as": "text"},
        {"key": "d", "prompt": "{{ a }}"},
    ]
    workflow = build(fake_llm.base_url, steps, inputs=["text"])
    problems = {(p["step"], p.get("field")): p["message"] for p in workflow_problems(workflow)}
    assert problems[(1, "when")].startswith("Template error")
    assert problems[(2, "for_each")] == ("for_each reads 'nowhere', which is neither a workflow input nor an earlier "
                                         "step's output.")
    assert "as 'text' hides an input" in problems[(3, "as")]
    assert [(w["step"], w["variable"]) for w in workflow_warnings(workflow)] == [(3, "a"), (4, "a")]


async def test_replay_from_a_step_reruns_it_and_what_depends_on_it_and_copies_the_rest(fake_llm):
    from runs.services import run_replay

    workflow = await sync_to_async(build)(fake_llm.base_url, FAN_OUT, inputs=["doc"])
    source = await start(workflow, doc="tides")
    assert await execute_run(source.pk) == "succeeded"
    before = fake_llm.stats()["chat_requests"]
    replay = await sync_to_async(run_replay)(source=source, user=None, from_step=1)  # "bullets"
    assert await execute_run(replay.pk) == "succeeded"
    assert fake_llm.stats()["chat_requests"] - before == 2  # bullets, and pick which reads it
    found = await rows(replay)
    assert [(r.output_key, r.status) for r in found] == [
        ("short", "copied"), ("bullets", "succeeded"), ("tweet", "copied"), ("title", "copied"), ("pick", "succeeded")]


async def test_replay_of_a_map_copies_its_items_when_a_later_step_is_replayed(fake_llm):
    from runs.services import run_replay

    workflow = await sync_to_async(build)(fake_llm.base_url, mapped(), inputs=["claims"])
    source = await start(workflow, claims=CLAIMS)
    assert await execute_run(source.pk) == "succeeded"
    before = fake_llm.stats()["chat_requests"]
    replay = await sync_to_async(run_replay)(source=source, user=None, from_step=1)
    assert await execute_run(replay.pk) == "succeeded"
    assert fake_llm.stats()["chat_requests"] - before == 1
    found = await rows(replay)
    assert [(r.index, r.item, r.status) for r in found] == [
        (0, 0, "copied"), *((0, n, "copied") for n in range(1, 6)), (1, 0, "succeeded")]
    original = await rows(source)
    assert [r.item_value for r in found[:6]] == [r.item_value for r in original[:6]]


async def test_a_flow_inserted_already_claimed_runs_from_its_claim(fake_llm):
    """The experiment driver inserts its cells' runs claimed (ledger.claimed_at_insert): a flow's claim is whole."""
    from django.utils import timezone

    from runs.engine import ledger
    from runs.engine.flow import FlowClaim
    from tests.factories import make_release

    @sync_to_async
    def insert() -> tuple[Run, object]:
        workflow = build(fake_llm.base_url, FAN_OUT, inputs=["doc"])
        release = make_release(workflow)
        steps = release.snapshot["steps"]
        run = Run.objects.create(workflow=workflow, workflow_name=workflow.name, release=release, inputs={"doc": "d"},
                                 step_count=len(steps), **ledger.claimed_at_insert(owner="driver:1", now=timezone.now()))
        return run, ledger.claim_inserted(run_id=run.pk, owner="driver:1", snapshot=release.snapshot,
                                          inputs={"doc": "d"}, budget_nano=None, budget_currency=None)

    run, claim = await insert()
    assert isinstance(claim, FlowClaim) and claim.first and claim.max_parallel == 4
    assert await execute_run(run.pk, owner="driver:1", claim=claim) == "succeeded"
    assert fake_llm.stats()["inflight_max"] == 4 or fake_llm.stats()["chat_requests"] == 5
    assert [r.status for r in await rows(run)] == ["succeeded"] * 5


async def test_a_budget_stops_a_flow_before_a_step_it_cannot_afford(fake_llm):
    import datetime
    from decimal import Decimal

    from django.utils import timezone

    from prices.book import book_forget
    from prices.models import Price
    from prices.services import price_save

    @sync_to_async
    def setup() -> Run:
        book_forget()
        # $0.01 a token and at most 20 tokens an answer: each item may cost $0.20 and costs about $0.30 (its prompt
        # too), so a $1 cap lets three items start and refuses the fourth.
        price_save(Price(model="gpt-4o-mini", effective_from=timezone.now() - datetime.timedelta(days=1),
                         input_per_million=Decimal("10000"), output_per_million=Decimal("10000"), currency="USD"))
        workflow = build(fake_llm.base_url, mapped(max_parallel=1, payload={"max_tokens": 20}), inputs=["claims"])
        return run_start(workflow=workflow, inputs={"claims": CLAIMS}, user=None, budget=Decimal("1"))

    run = await setup()
    try:
        assert await execute_run(run.pk) == "budget"
    finally:
        book_forget()
    run = await Run.objects.aget(pk=run.pk)
    assert run.error.startswith("Budget reached")
    items = [r for r in await rows(run) if r.item]
    assert 0 < len(items) < 5  # some items ran, the rest were never started
