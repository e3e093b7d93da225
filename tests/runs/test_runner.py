"""The runner over real HTTP to the fake LLM server: outputs, retries, errors, structured output."""
import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError

from runs.engine import dbthread, events, execute_run
from runs.models import Response, Run
from runs.services import run_cancel, run_replay, run_start, run_start_claimed
from tests.factories import (
    execute_watched,
    expected_chain_output,
    make_block,
    make_chain,
    make_endpoint,
    make_payload,
    make_workflow,
)

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def start_chain(base_url: str, *, stream: bool = False, endpoint_fields: dict | None = None, **payload_fields) -> Run:
    workflow = make_chain(make_endpoint(base_url, **(endpoint_fields or {})), stream=stream, **payload_fields)
    return run_start(workflow=workflow, inputs={"topic": "tides"}, user=None)


async def responses_of(run: Run) -> list[Response]:
    return [r async for r in Response.objects.filter(run_id=run.pk).order_by("index")]


@pytest.mark.parametrize("stream", [False, True])
async def test_three_step_chain_output_is_the_expected_text(fake_llm, stream):
    run = await start_chain(fake_llm.base_url, stream=stream)
    assert await execute_run(run.pk) == "succeeded"
    run = await Run.objects.aget(pk=run.pk)
    assert run.output == expected_chain_output("tides")
    responses = await responses_of(run)
    assert [r.index for r in responses] == [0, 1, 2]
    assert [r.output_key for r in responses] == ["outline", "paragraph", "summary"]
    assert all(r.status == "succeeded" and r.completion_tokens == 20 and not r.tokens_estimated for r in responses)
    assert responses[1].messages == [{"role": "user", "content": f"Expand this outline into a paragraph:\n{responses[0].output}"}]
    assert run.completion_tokens == 60 and run.prompt_tokens > 0
    assert fake_llm.stats()["chat_requests"] == 3
    if stream:
        assert all(r.ttft_ms is not None for r in responses)


async def test_streamed_step_emits_coalesced_deltas_that_add_up_to_the_output(fake_llm):
    fake_llm.control(inter_token_ms=5)
    run = await start_chain(fake_llm.base_url, stream=True)
    _, seen = await execute_watched(run.pk)
    kinds = [e["type"] for e in seen]
    assert kinds[0] == "run.started" and kinds[-1] == "run.completed"
    assert kinds.count("step.started") == 3 and kinds.count("step.completed") == 3
    responses = await responses_of(run)
    for response in responses:
        deltas = [e for e in seen if e["type"] == "step.delta" and e["index"] == response.index]
        assert not any(d.get("full") for d in deltas)  # a step this short never needs a full-text delta
        assert "".join(d["text"] for d in deltas) == response.output
        assert [d["offset"] for d in deltas] == [sum(len(x["text"]) for x in deltas[:i]) for i in range(len(deltas))]
        # 20 tokens 5 ms apart: coalescing sends far fewer messages than tokens.
        assert len(deltas) < 10


async def test_429_with_retry_after_and_500_are_retried_and_each_attempt_recorded(fake_llm):
    fake_llm.fail_next({"status": 429, "retry_after": "0.05"}, {"status": 500})
    run = await start_chain(fake_llm.base_url, endpoint_fields={"max_retries": 3})
    assert await execute_run(run.pk) == "succeeded"
    first = (await responses_of(run))[0]
    assert [a["ok"] for a in first.attempts] == [False, False, True]
    assert [a.get("http_status") for a in first.attempts[:2]] == [429, 500]
    assert first.attempts[0]["retry_in_ms"] == 50
    assert fake_llm.stats()["chat_requests"] == 5


async def test_retries_stop_at_the_endpoint_max_and_the_run_fails(fake_llm):
    fake_llm.fail_next(*[{"status": 500, "retry_after_ms": 1}] * 5)
    run = await start_chain(fake_llm.base_url, endpoint_fields={"max_retries": 2})
    assert await execute_run(run.pk) == "failed"
    run = await Run.objects.aget(pk=run.pk)
    [response] = await responses_of(run)
    assert response.status == "failed" and len(response.attempts) == 3
    assert "gave up after 3 attempts" in response.error
    assert "Step 1 (outline) failed" in run.error
    assert fake_llm.stats()["chat_requests"] == 3


@pytest.mark.parametrize(
    ("setup", "endpoint_fields", "expected"),
    [
        ({"faults": [{"hang": True}]}, {"timeout_seconds": 0.5, "max_retries": 0}, "did not answer within 0.5 s"),
        ({"api_key": "sk-right"}, {"api_key": "sk-wrong"}, "the endpoint refused the API key"),
        ({"models": ["other-model"]}, {}, "model 'gpt-4o-mini' does not exist on this endpoint"),
    ],
    ids=["timeout", "401", "unknown-model"],
)
async def test_errors_retrying_cannot_fix_are_reported_clearly(fake_llm, setup, endpoint_fields, expected):
    fake_llm.control(**setup)
    run = await start_chain(fake_llm.base_url, endpoint_fields=endpoint_fields)
    assert await execute_run(run.pk) == "failed"
    run = await Run.objects.aget(pk=run.pk)
    assert expected in run.error
    assert "sk-wrong" not in run.error


async def test_server_without_usage_while_streaming_gets_estimated_tokens(fake_llm):
    fake_llm.control(no_stream_usage=True)
    run = await start_chain(fake_llm.base_url, stream=True)
    assert await execute_run(run.pk) == "succeeded"
    for response in await responses_of(run):
        assert response.tokens_estimated
        assert response.completion_tokens > 0 and response.prompt_tokens > 0


async def test_cancel_mid_stream_keeps_the_partial_response(fake_llm):
    fake_llm.control(inter_token_ms=100)
    run = await start_chain(fake_llm.base_url, stream=True)
    first_delta = asyncio.Event()
    finals: list[dict] = []
    unsubscribe = events.subscribe(run.pk, lambda e: (e["type"] == "step.delta" and first_delta.set(),
                                                      e["type"].startswith("run.") and finals.append(e)))
    task = asyncio.create_task(execute_run(run.pk))
    try:
        await asyncio.wait_for(first_delta.wait(), 10)
        await sync_to_async(run_cancel)(run=await Run.objects.aget(pk=run.pk))
        assert await asyncio.wait_for(task, 10) == "cancelled"
    finally:
        unsubscribe()
    run = await Run.objects.aget(pk=run.pk)
    assert run.status == "cancelled" and run.finished_at is not None
    # People count steps from 1; the event says what docs/events.md says (the reason is in the run).
    assert run.error == "Cancelled by a user during step 1 (outline)."
    assert finals[-1] == {"type": "run.cancelled", "run_id": run.pk, "status": "cancelled"}
    [response] = await responses_of(run)
    assert response.status == "cancelled"
    assert response.output and len(response.output.split()) < 20
    assert expected_chain_output("tides") != run.output
    # The call was paid for in part and the stream sent no usage: its cost is unknown, not $0.
    assert (response.cost_nano, response.cost_source) == (None, "unknown") and "cut off" in response.cost_note


async def test_cancelling_a_queued_run_stops_it_before_any_llm_call(fake_llm):
    run = await start_chain(fake_llm.base_url)
    run = await sync_to_async(run_cancel)(run=run)
    assert run.status == "cancelled"
    assert await execute_run(run.pk) is None
    assert fake_llm.stats()["chat_requests"] == 0


async def test_replay_from_step_1_copies_step_0_and_calls_the_llm_only_for_the_rest(fake_llm):
    source = await start_chain(fake_llm.base_url)
    await execute_run(source.pk)
    fake_llm.reset()
    source = await Run.objects.select_related("workflow").aget(pk=source.pk)
    replay = await sync_to_async(run_replay)(source=source, user=None, from_step=1)
    assert await execute_run(replay.pk) == "succeeded"
    assert fake_llm.stats()["chat_requests"] == 2
    copied, *called = await responses_of(replay)
    original = (await responses_of(source))[0]
    assert copied.status == "copied" and copied.copied_from_id == original.pk and copied.output == original.output
    assert [r.status for r in called] == ["succeeded", "succeeded"]
    replay = await Run.objects.aget(pk=replay.pk)
    assert replay.source_run_id == source.pk and replay.replay_from_step == 1
    assert replay.output == source.output


async def test_replay_with_edited_inputs_from_step_0_calls_every_step(fake_llm):
    source = await start_chain(fake_llm.base_url)
    await execute_run(source.pk)
    source = await Run.objects.select_related("workflow").aget(pk=source.pk)
    replay = await sync_to_async(run_replay)(source=source, user=None, from_step=0, inputs={"topic": "storms"})
    assert await execute_run(replay.pk) == "succeeded"
    replay = await Run.objects.aget(pk=replay.pk)
    assert replay.output == expected_chain_output("storms")


SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}, "points": {"type": "integer"}},
          "required": ["title", "points"]}


@sync_to_async
def start_structured(base_url: str, retries: int) -> Run:
    endpoint = make_endpoint(base_url)
    outline = make_payload("outline", endpoint, [("user", make_block("o", "Outline {{ topic }}"))],
                           json_schema=SCHEMA, structured_retries=retries)
    title = make_payload("title", endpoint, [("user", make_block("t", "Title: {{ outline.title }} ({{ outline.points }})"))])
    workflow = make_workflow("structured", [("outline", outline), ("title", title)])
    return run_start(workflow=workflow, inputs={"topic": "tides"}, user=None)


async def test_json_schema_output_is_validated_retried_and_its_fields_usable_later(fake_llm):
    # Broken JSON is the model's fault (asked again); prose would say the server ignored response_format.
    fake_llm.fail_next({"content": "{not json at all"}, {"content": '{"title": 3}'})
    run = await start_structured(fake_llm.base_url, retries=2)
    assert await execute_run(run.pk) == "succeeded"
    outline, title = await responses_of(run)
    assert [a["ok"] for a in outline.attempts] == [False, False, True]
    assert outline.attempts[0]["kind"] == "invalid_output"
    assert outline.output_json["title"].startswith("echo:Outline tides")
    assert title.messages[0]["content"] == f"Title: {outline.output_json['title']} ({outline.output_json['points']})"
    sent = fake_llm.stats()["recent"][0]
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == SCHEMA


async def test_json_schema_output_still_invalid_after_the_retries_fails_the_step(fake_llm):
    fake_llm.fail_next(*[{"content": '{"title": "x"}'}] * 3)
    run = await start_structured(fake_llm.base_url, retries=1)
    assert await execute_run(run.pk) == "failed"
    [outline] = await responses_of(run)
    assert "does not match the JSON schema" in outline.error and "'points' is a required property" in outline.error
    assert len(outline.attempts) == 2


async def test_a_step_already_committed_is_never_run_again(fake_llm):
    run = await start_chain(fake_llm.base_url)
    assert await execute_run(run.pk) == "succeeded"
    # Redelivery of a finished run (as a task engine may do) does nothing.
    assert await execute_run(run.pk) is None
    assert fake_llm.stats()["chat_requests"] == 3
    assert await Response.objects.filter(run_id=run.pk).acount() == 3


async def test_two_executors_racing_for_one_run_produce_one_response_per_step(fake_llm):
    fake_llm.control(latency_ms=20)
    run = await start_chain(fake_llm.base_url)
    results = await asyncio.gather(*(execute_run(run.pk) for _ in range(4)))
    assert results.count("succeeded") == 1
    assert await Response.objects.filter(run_id=run.pk).acount() == 3
    assert fake_llm.stats()["chat_requests"] == 3


async def test_max_steps_stops_after_one_step_and_frees_the_run_for_the_next_task(fake_llm):
    run = await start_chain(fake_llm.base_url)
    assert await execute_run(run.pk, max_steps=1) == "running"
    stopped = await Run.objects.aget(pk=run.pk)
    assert stopped.next_step == 1 and stopped.lease_owner == "" and stopped.status == "running"
    assert await Response.objects.filter(run_id=run.pk).acount() == 1
    assert await execute_run(run.pk, max_steps=1) == "running"
    assert await execute_run(run.pk, max_steps=1) == "succeeded"
    finished = await Run.objects.aget(pk=run.pk)
    assert finished.output == expected_chain_output("tides")
    assert [r.index for r in await responses_of(finished)] == [0, 1, 2]


async def test_a_run_started_claimed_is_held_by_its_starter_until_it_executes_it(fake_llm):
    workflow = await sync_to_async(make_chain)(await sync_to_async(make_endpoint)(fake_llm.base_url))
    run, claim = await dbthread.call(run_start_claimed, workflow=workflow, inputs={"topic": "tides"}, user=None,
                                     owner="cli:test")
    held = await Run.objects.aget(pk=run.pk)
    assert held.lease_owner == "cli:test" and held.status == "running" and claim.index == 0
    # Nobody else can take it (an executor or worker woken by mistake): the lease is live.
    assert await execute_run(run.pk) is None
    status, seen = await execute_watched(run.pk, owner="cli:test", claim=claim)
    assert status == "succeeded"
    assert [e["type"] for e in seen if e["type"] in ("run.started", "run.completed")] == ["run.started", "run.completed"]
    assert (await Run.objects.aget(pk=run.pk)).output == expected_chain_output("tides")
    assert fake_llm.stats()["chat_requests"] == 3
    with pytest.raises(ValueError, match="owner"):
        await execute_run(run.pk, owner="someone-else", claim=claim)


async def test_a_claimed_start_with_wrong_inputs_creates_nothing(fake_llm):
    workflow = await sync_to_async(make_chain)(await sync_to_async(make_endpoint)(fake_llm.base_url))
    with pytest.raises(ValidationError, match="Missing inputs: topic"):
        await dbthread.call(run_start_claimed, workflow=workflow, inputs={}, user=None, owner="cli:test")
    assert await Run.objects.acount() == 0
