"""Run traces over OTLP/HTTP to a real receiver, after real runs against the fake LLM server."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings
from django.utils import timezone

from observability import tracing
from runs.engine import events, execute_run
from runs.models import Response, Run
from runs.services import run_start
from tests.factories import make_chain, make_endpoint
from tests.fake_llm import free_port
from tests.observability.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

SPAN_KIND_CLIENT, STATUS_ERROR = 3, 2


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture(autouse=True)
def _tracing_off_after() -> Iterator[None]:
    yield
    tracing.shutdown()


@sync_to_async
def start_chain(base_url: str, *, endpoint_fields: dict | None = None, **payload_fields) -> Run:
    workflow = make_chain(make_endpoint(base_url, **(endpoint_fields or {})), **payload_fields)
    return run_start(workflow=workflow, inputs={"topic": "tides"}, user=None)


@sync_to_async
def start_again(run: Run) -> Run:
    return run_start(workflow=Run.objects.get(pk=run.pk).workflow, inputs={"topic": "again"}, user=None)


async def responses_of(run: Run) -> list[Response]:
    return [r async for r in Response.objects.filter(run_id=run.pk).order_by("index")]


async def run_traced(fake_llm, receiver: Receiver, *, capture_content: bool = False, **chain) -> tuple[Run, list]:
    builder = tracing.configure(endpoint=f"{receiver.url}/v1/traces", service_name="orch-test",
                                capture_content=capture_content)
    run = await start_chain(fake_llm.base_url, **chain)
    await execute_run(run.pk)
    assert await sync_to_async(builder.flush)()
    run = await Run.objects.aget(pk=run.pk)
    return run, [span for span in receiver.spans if span.trace_id == tracing.trace_id_of(run.pk, run.created_at)]


async def test_a_run_is_one_trace_a_run_span_over_a_chat_span_per_step_by_the_genai_conventions(fake_llm, receiver):
    run, spans = await run_traced(fake_llm, receiver, temperature=0.3, max_tokens=50)
    assert run.status == "succeeded"
    [root] = [span for span in spans if span.parent_span_id is None]
    steps = sorted((span for span in spans if span.parent_span_id is not None), key=lambda s: s.start_ns)
    assert len(spans) == 4 and len(steps) == 3
    assert root.name == "workflow article" and root.trace_id == tracing.trace_id_of(run.pk, run.created_at)
    assert root.resource["service.name"] == "orch-test"
    assert root.attributes["orchestrator.workflow.name"] == "article"
    assert root.attributes["orchestrator.release.id"] == run.release_id
    assert root.attributes["gen_ai.usage.output_tokens"] == run.completion_tokens == 60
    assert all(step.trace_id == root.trace_id and step.parent_span_id == root.span_id for step in steps)
    assert all(root.start_ns <= step.start_ns <= step.end_ns <= root.end_ns for step in steps)
    responses = await responses_of(run)
    for step, response in zip(steps, responses, strict=True):
        assert step.name == "chat gpt-4o-mini" and step.kind == SPAN_KIND_CLIENT
        assert step.attributes["gen_ai.operation.name"] == "chat"
        assert step.attributes["gen_ai.provider.name"] == "openai"
        assert step.attributes["gen_ai.request.model"] == "gpt-4o-mini"
        assert step.attributes["gen_ai.request.temperature"] == 0.3
        assert step.attributes["gen_ai.request.max_tokens"] == 50
        assert step.attributes["gen_ai.response.finish_reasons"] == [response.finish_reason]
        assert step.attributes["gen_ai.usage.input_tokens"] == response.prompt_tokens
        assert step.attributes["gen_ai.usage.output_tokens"] == response.completion_tokens == 20
        assert step.attributes["orchestrator.step.key"] == response.output_key
        assert step.attributes["orchestrator.endpoint.name"] == "fake"
        assert "error.type" not in step.attributes
        # No content unless asked for.
        assert not any(name.startswith("gen_ai.input") or name.startswith("gen_ai.output") for name in step.attributes)
    assert [s.attributes["orchestrator.step.key"] for s in steps] == ["outline", "paragraph", "summary"]


async def test_prompts_and_answers_are_exported_only_with_the_opt_in(fake_llm, receiver):
    run, spans = await run_traced(fake_llm, receiver, capture_content=True)
    responses = await responses_of(run)
    by_key = {span.attributes.get("orchestrator.step.key"): span for span in spans}
    for response in responses:
        attributes = by_key[response.output_key].attributes
        assert json.loads(attributes["gen_ai.input.messages"]) == [
            {"role": "user", "parts": [{"type": "text", "content": response.messages[0]["content"]}]}]
        assert json.loads(attributes["gen_ai.output.messages"]) == [
            {"role": "assistant", "parts": [{"type": "text", "content": response.output}], "finish_reason": "stop"}]


async def test_a_failed_step_has_an_error_type_and_an_error_status(fake_llm, receiver):
    fake_llm.control(api_key="sk-right")
    run, spans = await run_traced(fake_llm, receiver, endpoint_fields={"api_key": "sk-wrong"})
    assert run.status == "failed"
    [root] = [span for span in spans if span.parent_span_id is None]
    [step] = [span for span in spans if span.parent_span_id is not None]
    assert root.status_code == STATUS_ERROR and root.attributes["error.type"] == "failed"
    assert step.status_code == STATUS_ERROR and step.attributes["error.type"] == "auth"
    assert "sk-wrong" not in repr(spans) and "sk-wrong" not in repr(receiver.headers)


async def test_a_collector_that_is_down_never_fails_a_run(fake_llm):
    builder = tracing.configure(endpoint=f"http://127.0.0.1:{free_port()}/v1/traces", timeout=0.2)
    run = await start_chain(fake_llm.base_url)
    assert await execute_run(run.pk) == "succeeded"
    await sync_to_async(builder.flush)()  # the failed export ends within its timeout: the pipeline is not wedged
    second = await start_again(run)
    assert await execute_run(second.pk) == "succeeded"


async def test_runs_go_on_while_the_collector_holds_an_export_unanswered(fake_llm, receiver):
    builder = tracing.configure(endpoint=f"{receiver.url}/v1/traces", timeout=30)
    first = await start_chain(fake_llm.base_url)
    await execute_run(first.pk)
    receiver.hold()
    flushing = threading.Thread(target=builder.flush)
    flushing.start()
    assert await sync_to_async(receiver.received.wait)(30)  # the export thread is now stuck in its request
    second = await start_again(first)
    assert await execute_run(second.pk) == "succeeded"
    assert receiver.requests == 1 and not receiver.answer.is_set()  # the first export is still unanswered
    receiver.release()
    await sync_to_async(flushing.join)()
    assert await sync_to_async(builder.flush)()
    traced = {span.attributes.get("orchestrator.run.id") for span in receiver.spans if span.parent_span_id is None}
    assert {first.pk, second.pk} <= traced


async def test_with_tracing_off_no_observer_is_registered(fake_llm, receiver):
    tracing.configure(endpoint=f"{receiver.url}/v1/traces")
    tracing.shutdown()
    assert tracing._run_finished not in events.run_finished_observers
    run = await start_chain(fake_llm.base_url)
    assert await execute_run(run.pk) == "succeeded"
    assert receiver.requests == 0


async def test_the_trace_id_is_the_runs_and_the_run_page_links_to_it(fake_llm, receiver, client, user):
    run, spans = await run_traced(fake_llm, receiver)
    [root] = [span for span in spans if span.parent_span_id is None]
    await sync_to_async(client.force_login)(user)
    with override_settings(OTEL_TRACE_URL_TEMPLATE="https://jaeger.example/trace/{trace_id}"):
        page = (await sync_to_async(client.get)(f"/runs/{run.pk}/")).content.decode()
    assert f'href="https://jaeger.example/trace/{root.trace_id:032x}"' in page
    page = (await sync_to_async(client.get)(f"/runs/{run.pk}/")).content.decode()
    assert 'id="run-trace"' not in page


def test_a_step_over_a_list_is_a_step_span_with_a_chat_span_per_item(receiver):
    """Rows as a mapping step stores them (item 0: the step's own row; 1..n: each item's call)."""
    builder = tracing.configure(endpoint=f"{receiver.url}/v1/traces")
    now = timezone.now()
    run = {"id": 999_001, "workflow_id": 1, "workflow_name": "mapper", "status": "succeeded", "error": "", "label": "",
           "release_id": 1, "release__number": 1, "release__content_hash": "0" * 64, "created_at": now - timedelta(seconds=5),
           "started_at": now - timedelta(seconds=5), "finished_at": now, "prompt_tokens": 30, "completion_tokens": 60}

    def row(index: int, item: int, ms: int) -> dict:
        return {"run_id": run["id"], "index": index, "item": item, "output_key": f"k{index}", "payload_name": "p",
                "endpoint_name": "e", "model": "m", "request_params": {}, "finish_reason": "stop", "prompt_tokens": 10,
                "completion_tokens": 20, "latency_ms": ms, "ttft_ms": None, "attempts": [{"ok": True}],
                "status": "succeeded", "error": "", "cost_nano": None, "cost_currency": None,
                "created_at": now - timedelta(milliseconds=100 * (5 - index - item))}

    builder.trace_run(run, [row(0, 0, 300), row(1, 0, 0), row(1, 1, 200), row(1, 2, 250)], {"e": "openai"})
    assert builder.flush()
    spans = {(s.attributes.get("orchestrator.step.index"), s.attributes.get("orchestrator.step.item"), s.name): s
             for s in receiver.spans}
    root = spans[(None, None, "workflow mapper")]
    step = spans[(1, None, "step k1")]
    items = [spans[(1, n, "chat m")] for n in (1, 2)]
    assert spans[(0, None, "chat m")].parent_span_id == root.span_id and step.parent_span_id == root.span_id
    assert all(item.parent_span_id == step.span_id for item in items)
    assert step.attributes["orchestrator.step.items"] == 2 and len(receiver.spans) == 5
    assert all(step.start_ns <= item.start_ns <= item.end_ns <= step.end_ns for item in items)


async def test_a_real_map_run_exports_a_step_span_over_a_chat_span_per_item(fake_llm, receiver):
    from tests.runs.test_flow import build, mapped

    builder = tracing.configure(endpoint=f"{receiver.url}/v1/traces", service_name="orch-test")
    workflow = await sync_to_async(build)(fake_llm.base_url, mapped(), inputs=["claims"])
    run = await sync_to_async(run_start)(workflow=workflow, inputs={"claims": json.dumps(["a", "b", "c"])}, user=None)
    assert await execute_run(run.pk) == "succeeded"
    assert await sync_to_async(builder.flush)()
    run = await Run.objects.aget(pk=run.pk)
    spans = [span for span in receiver.spans if span.trace_id == tracing.trace_id_of(run.pk, run.created_at)]
    [step] = [span for span in spans if span.name == "step checks"]
    items = sorted((span for span in spans if span.parent_span_id == step.span_id),
                   key=lambda span: span.attributes["orchestrator.step.item"])
    assert [span.attributes["orchestrator.step.item"] for span in items] == [1, 2, 3]
    assert all(span.name == "chat gpt-4o-mini" and span.attributes["gen_ai.usage.output_tokens"] == 20 for span in items)
    [report] = [span for span in spans if span.attributes.get("orchestrator.step.key") == "report"]
    assert report.name == "chat gpt-4o-mini" and report.parent_span_id == step.parent_span_id
