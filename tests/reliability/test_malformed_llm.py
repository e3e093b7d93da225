"""Malformed LLM answers through whole runs: the step fails with a message that says what the
server did, the run is marked failed, and a run beside it is unaffected."""
import asyncio

import pytest
from asgiref.sync import sync_to_async

from runs.engine import execute_run
from runs.models import Response, Run
from runs.services import run_start
from tests.factories import expected_chain_output, make_chain, make_endpoint

pytestmark = pytest.mark.django_db(transaction=True)

FAULTS = [
    ({"invalid_json": True}, False, "the endpoint sent invalid JSON"),
    ({"invalid_json": True}, True, "an event was not valid JSON"),
    ({"cut_stream_after": 4}, True, "the stream was cut off after 5 chunks: the server closed the connection"),
    ({"no_choices": True}, False, "has no choices"),
    ({"no_choices": True}, True, "the stream ended after 3 chunks without any text or finish reason"),
    ({"html": True}, False, "answered HTTP 200 with text/html instead of a JSON chat completion: '<html>"),
    ({"html": True}, True, "answered a streaming request with text/html instead of an event stream"),
    ({"hang": True}, False, "the endpoint did not answer within 0.5 s"),
    ({"hang": True}, True, "the endpoint did not answer within 0.5 s"),
]


@sync_to_async
def start_runs(base_url: str, stream: bool) -> tuple[int, int]:
    broken = make_chain(make_endpoint(base_url, name="broken", max_retries=0, timeout_seconds=0.5),
                        stream=stream, name="broken")
    healthy = make_chain(make_endpoint(base_url, name="healthy"), stream=stream, name="healthy")
    return (run_start(workflow=broken, inputs={"topic": "bad"}, user=None).pk,
            run_start(workflow=healthy, inputs={"topic": "good"}, user=None).pk)


@pytest.mark.parametrize(("fault", "stream", "expected"), FAULTS,
                         ids=[f"{next(iter(f))}-{'stream' if s else 'json'}" for f, s, _ in FAULTS])
async def test_a_malformed_answer_fails_its_step_and_run_and_nothing_else(fake_llm, fault, stream, expected):
    broken_id, healthy_id = await start_runs(fake_llm.base_url, stream)
    fake_llm.fail_next(fault)
    broken = asyncio.create_task(execute_run(broken_id))
    # The broken run takes the fault; the healthy one then runs beside it (beside a hung request, too).
    while (await asyncio.to_thread(fake_llm.stats))["faults_left"]:
        await asyncio.sleep(0.01)
    assert await execute_run(healthy_id) == "succeeded"
    assert await broken == "failed"

    run = await Run.objects.aget(pk=broken_id)
    assert run.status == "failed" and run.finished_at is not None
    assert expected in run.error and "Step 1 (outline) failed" in run.error
    [step] = [r async for r in Response.objects.filter(run_id=broken_id)]
    assert step.index == 0 and step.status == "failed" and expected in step.error
    assert len(step.attempts) == 1 and not step.attempts[0]["ok"]

    healthy = await Run.objects.aget(pk=healthy_id)
    assert healthy.output == expected_chain_output("good")
    assert await Response.objects.filter(run_id=healthy_id, status="succeeded").acount() == 3
