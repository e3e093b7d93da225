"""A run learns what its server accepts, stores it for every process, and keeps reasoning apart."""
import datetime

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from llm import client, selectors
from llm.models import Capability
from runs.engine import execute_run, ledger
from runs.models import Response, Run
from runs.services import run_start
from tests.factories import execute_watched, make_block, make_endpoint, make_payload, make_workflow

pytestmark = pytest.mark.django_db(transaction=True)

LLAMA_CPP_500 = 'response_format type must be one of "text" or "json_object", but got: json_schema'
OBJECT = {"type": "object"}


def forget_this_process() -> None:
    """What another process knows: only the database (no learned overlay, no cached endpoint config)."""
    client._learned.clear()
    ledger.endpoint_configs_forget()


@sync_to_async
def start(base_url: str, *, schema: dict | None = None, pass_reasoning: bool = False, endpoint=None,
          stream: bool = False) -> Run:
    endpoint = endpoint or make_endpoint(base_url)
    n = Run.objects.count()
    first = make_payload(f"first{n}", endpoint, [("user", make_block(f"f{n}", "Think about {{ topic }}"))],
                         json_schema=schema, pass_reasoning=pass_reasoning, stream=stream)
    second = make_payload(f"second{n}", endpoint, [("user", make_block(f"s{n}", "Use: {{ first }}"))])
    workflow = make_workflow(f"wf{n}", [("first", first), ("second", second)])
    return run_start(workflow=workflow, inputs={"topic": "tides"}, user=None)


async def responses_of(run: Run) -> list[Response]:
    return [r async for r in Response.objects.filter(run_id=run.pk).order_by("index")]


async def test_a_500_that_names_json_schema_is_adapted_to_once_and_remembered_by_every_process(fake_llm):
    fake_llm.fail_next({"status": 500, "message": LLAMA_CPP_500})
    run = await start(fake_llm.base_url, schema=OBJECT)
    assert await execute_run(run.pk) == "succeeded"
    first, _ = await responses_of(run)
    assert [a.get("adapted") for a in first.attempts] == [{"structured_output": "json_object_schema"}, None]
    assert first.attempts[-1]["sent_as"] == {"structured_output": "json_object_schema"}
    assert "retry_in_ms" not in first.attempts[0]  # adapted at once, not waited out as a server error
    assert fake_llm.stats()["chat_requests"] == 3
    stored = await Capability.objects.aget(model="gpt-4o-mini")
    assert stored.structured_output == "json_object_schema"
    assert LLAMA_CPP_500 in stored.evidence["structured_output"]["said"]

    forget_this_process()
    endpoint = await sync_to_async(lambda: stored.endpoint)()
    again = await start(fake_llm.base_url, schema=OBJECT, endpoint=endpoint)
    assert await execute_run(again.pk) == "succeeded"
    first_again, _ = await responses_of(again)
    assert len(first_again.attempts) == 1
    assert fake_llm.stats()["recent"][3]["response_format"] == {"type": "json_object", "schema": OBJECT}


async def test_a_500_that_names_nothing_we_sent_is_still_retried_with_backoff(fake_llm):
    fake_llm.fail_next({"status": 500, "message": "CUDA error: out of memory"})
    run = await start(fake_llm.base_url, schema=OBJECT)
    assert await execute_run(run.pk) == "succeeded"
    first, _ = await responses_of(run)
    assert first.attempts[0]["kind"] == "server" and "retry_in_ms" in first.attempts[0]
    assert "adapted" not in first.attempts[0]
    assert not await Capability.objects.aexists()


async def test_reasoning_is_recorded_apart_and_not_passed_on_unless_the_payload_asks(fake_llm):
    fake_llm.fail_next({"content": "<think>Tides follow the moon.</think>\n\nHigh and low water."})
    run = await start(fake_llm.base_url)
    assert await execute_run(run.pk) == "succeeded"
    first, second = await responses_of(run)
    assert first.output == "High and low water."
    assert first.reasoning == "Tides follow the moon."
    assert second.messages[0]["content"] == "Use: High and low water."
    assert (await Capability.objects.aget()).reasoning_field == "think_tags"

    fake_llm.fail_next({"content": "<think>Tides follow the moon.</think>\n\nHigh and low water."})
    endpoint = await sync_to_async(lambda: first.run.workflow.steps.first().payload.endpoint)()
    passed = await start(fake_llm.base_url, pass_reasoning=True, endpoint=endpoint)
    assert await execute_run(passed.pk) == "succeeded"
    _, second = await responses_of(passed)
    assert second.messages[0]["content"] == "Use: <think>Tides follow the moon.</think>\nHigh and low water."


@sync_to_async
def capability(**fields) -> Capability:
    endpoint = make_endpoint("http://127.0.0.1:9/v1")
    return Capability.objects.create(endpoint=endpoint, model="m", **fields)


async def test_a_learned_downgrade_is_tried_afresh_after_the_relearn_time_but_a_persons_setting_stays(settings):
    settings.LLM_CAPABILITY_RELEARN_SECONDS = 3600
    row = await capability(structured_output="prompt", temperature=False, overridden=["temperature"],
                           learned_at=timezone.now() - datetime.timedelta(seconds=30))
    caps = (await selectors.aendpoint_capabilities(row.endpoint_id))["m"]
    assert (caps.structured_output, caps.temperature) == ("prompt", False)
    row.learned_at = timezone.now() - datetime.timedelta(hours=2)
    await row.asave()
    caps = (await selectors.aendpoint_capabilities(row.endpoint_id))["m"]
    assert (caps.structured_output, caps.temperature) == ("json_schema", False)


async def test_a_streamed_think_block_never_reaches_the_live_answer(fake_llm):
    fake_llm.fail_next({"content": "<think>I considered tides</think>The answer is here"})
    run = await start(fake_llm.base_url, stream=True)
    status, seen = await execute_watched(run.pk)
    assert status == "succeeded"
    first, _ = await responses_of(run)
    assert (first.output, first.reasoning) == ("The answer is here", "I considered tides")
    streamed = "".join(e["text"] for e in seen if e["type"] == "step.delta" and e["index"] == 0)
    assert streamed == "The answer is here"
