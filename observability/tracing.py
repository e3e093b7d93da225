"""OpenTelemetry traces of runs: one trace per run, a span per step (per map item), by the GenAI conventions.

Nothing is traced while a run executes. When a run finishes, its id goes into a bounded queue; a
thread of ours reads the run and its `Response` rows and builds the whole trace with the times they
recorded, and the SDK's BatchSpanProcessor exports it over OTLP/HTTP from its own thread. So a run
pays one queue put, and a collector that is slow or down costs the export thread, never a run
(when the queues are full, traces are dropped and logged). With no OTLP endpoint configured,
nothing here is installed. The trace id is derived from the run (`trace_id_of`), so the run page
can link to it without storing anything.
"""
from __future__ import annotations

import atexit
import datetime
import json
import logging
import queue
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection
from django.utils import timezone
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from core.money import PER_UNIT
from llm.models import Endpoint
from observability.trace_ids import trace_id_of
from runs.engine import events
from runs.models import Response, ResponseStatus, Run, RunStatus

logger = logging.getLogger(__name__)

# Finished runs waiting for their trace to be built; past this, traces are dropped (and logged).
MAX_PENDING_RUNS = 10_000
# Runs whose traces are built from one read of their rows.
BUILD_BATCH = 200
# Response has an `item` once steps map over lists: 0 is the step's own row, n >= 1 its n-th item's call.
_HAS_ITEM = any(field.name == "item" for field in Response._meta.get_fields())
_RESPONSE_FIELDS = ("run_id", "index", "output_key", "payload_name", "endpoint_name", "model", "request_params",
                    "finish_reason", "prompt_tokens", "completion_tokens", "latency_ms", "ttft_ms", "attempts", "status",
                    "error", "cost_nano", "cost_currency", "created_at", *(("item",) if _HAS_ITEM else ()))
_CONTENT_FIELDS = ("messages", "output")
_RUN_FIELDS = ("id", "workflow_id", "workflow_name", "status", "error", "label", "release_id", "release__number",
               "release__content_hash", "created_at", "started_at", "finished_at", "prompt_tokens", "completion_tokens")
# Hosts whose provider the GenAI conventions name (gen_ai.provider.name); any other server speaks OpenAI's API.
PROVIDERS = {"api.openai.com": "openai", "openai.azure.com": "azure.ai.openai", "api.anthropic.com": "anthropic",
             "generativelanguage.googleapis.com": "gcp.gemini", "aiplatform.googleapis.com": "gcp.vertex_ai",
             "api.mistral.ai": "mistral_ai", "api.groq.com": "groq", "api.deepseek.com": "deepseek",
             "api.x.ai": "x_ai", "api.perplexity.ai": "perplexity", "api.cohere.com": "cohere",
             "bedrock-runtime.amazonaws.com": "aws.bedrock", "openrouter.ai": "openrouter"}


def provider_name(base_url: str) -> str:
    host = (urlsplit(base_url).hostname or "").lower()
    for suffix, name in PROVIDERS.items():
        if host == suffix or host.endswith(f".{suffix}"):
            return name
    return "openai"


def _ns(moment: datetime.datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


class _RunTraceIds(RandomIdGenerator):
    """Span ids at random; the next root span's trace id set by the builder (its only user)."""

    next_trace_id: int | None = None

    def generate_trace_id(self) -> int:
        return self.next_trace_id or super().generate_trace_id()


@dataclass
class _Flush:
    """A marker in the queue: set once every run queued before it has its trace built."""

    done: threading.Event


_STOP = object()


class TraceBuilder:
    """The thread that turns finished runs into traces, and the SDK pipeline that exports them."""

    def __init__(self, *, endpoint: str, service_name: str, timeout: float, capture_content: bool) -> None:
        self.ids = _RunTraceIds()
        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}), id_generator=self.ids,
                                       shutdown_on_exit=False)
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=timeout)))
        self.tracer = self.provider.get_tracer("llm-orchestrator")
        self.capture_content = capture_content
        self.pending: queue.Queue[Any] = queue.Queue(maxsize=MAX_PENDING_RUNS)
        self.dropped = 0
        self.thread = threading.Thread(target=self._work, name="otel-run-traces", daemon=True)
        self.thread.start()

    def submit(self, run_id: int) -> None:
        try:
            self.pending.put_nowait(run_id)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning("tracing: %s finished runs dropped untraced (the trace queue is full)", self.dropped)

    def flush(self, timeout: float = 30.0) -> bool:
        """Build the traces of the runs queued so far and export them (tests, shutdown)."""
        done = threading.Event()
        self.pending.put(_Flush(done))
        return done.wait(timeout) and self.provider.force_flush(int(timeout * 1000))

    def stop(self, timeout: float = 5.0) -> None:
        if self.thread.is_alive():
            self.pending.put(_STOP)
            self.thread.join(timeout)
        self.provider.shutdown()

    def _work(self) -> None:
        while True:
            batch = [self.pending.get()]
            while len(batch) < BUILD_BATCH and not self.pending.empty():
                batch.append(self.pending.get_nowait())
            run_ids = [entry for entry in batch if isinstance(entry, int)]
            try:
                if run_ids:
                    self._build(run_ids)
            except Exception:
                logger.warning("tracing: could not build the traces of runs %s", run_ids, exc_info=True)
            for entry in batch:
                if isinstance(entry, _Flush):
                    entry.done.set()
            if self.pending.empty() or _STOP in batch:
                connection.close()  # idle: hold no database connection
            if _STOP in batch:
                return

    def _build(self, run_ids: list[int]) -> None:
        fields = _RESPONSE_FIELDS + (_CONTENT_FIELDS if self.capture_content else ())
        order = ("run_id", "index", "item") if _HAS_ITEM else ("run_id", "index")
        steps: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for row in Response.objects.filter(run_id__in=run_ids).order_by(*order).values(*fields):
            steps[row["run_id"]].append(row)
        names = {row["endpoint_name"] for rows in steps.values() for row in rows}
        base_urls = dict(Endpoint.objects.filter(name__in=names).values_list("name", "base_url"))
        for run in Run.objects.filter(pk__in=run_ids).values(*_RUN_FIELDS):
            self.trace_run(run, steps.get(run["id"], []), base_urls)

    def trace_run(self, run: dict[str, Any], rows: list[dict[str, Any]], base_urls: dict[str, str]) -> None:
        """One run's trace, from its row and its steps' rows (in the builder's thread, which sets the trace id)."""
        self.ids.next_trace_id = trace_id_of(run["id"], run["created_at"])
        try:
            root = self.tracer.start_span(f"workflow {run['workflow_name']}", kind=SpanKind.INTERNAL,
                                          start_time=_ns(run["created_at"]), attributes=_run_attributes(run, rows))
        finally:
            self.ids.next_trace_id = None
        if run["status"] == RunStatus.FAILED:
            root.set_status(Status(StatusCode.ERROR, run["error"][:500]))
        parent = trace.set_span_in_context(root)
        by_index: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_index[row["index"]].append(row)
        for index_rows in by_index.values():
            if any(row.get("item") for row in index_rows):
                self._map_step(run, index_rows, parent, base_urls)
            else:
                for row in index_rows:
                    self._chat_span(run, row, parent, base_urls)
        # finished_at is taken just before the last step's row is written: the run's span covers its steps.
        root.end(end_time=max([_ns(run["finished_at"] or timezone.now()), *(_call_span(row)[1] for row in rows)]))

    def _map_step(self, run: dict[str, Any], rows: list[dict[str, Any]], parent: Any, base_urls: dict[str, str]) -> None:
        """A step over a list: a span for the step (its own row, item 0), a chat span per item's call under it."""
        items = [row for row in rows if row.get("item")]
        first = rows[0]
        step = self.tracer.start_span(f"step {first['output_key']}", context=parent, kind=SpanKind.INTERNAL,
                                      start_time=min(_call_span(row)[0] for row in rows),
                                      attributes={"orchestrator.run.id": run["id"], "orchestrator.step.index": first["index"],
                                                  "orchestrator.step.key": first["output_key"],
                                                  "orchestrator.step.items": len(items)})
        if any(row["status"] == ResponseStatus.FAILED for row in rows):
            step.set_status(Status(StatusCode.ERROR))
        for row in items:
            self._chat_span(run, row, trace.set_span_in_context(step), base_urls)
        step.end(end_time=max(_call_span(row)[1] for row in rows))

    def _chat_span(self, run: dict[str, Any], row: dict[str, Any], parent: Any, base_urls: dict[str, str]) -> None:
        start, end = _call_span(row)
        span: Span = self.tracer.start_span(f"chat {row['model']}", context=parent, kind=SpanKind.CLIENT, start_time=start,
                                            attributes=_chat_attributes(run, row, base_urls.get(row["endpoint_name"], "")))
        if self.capture_content:
            span.set_attributes(_content_attributes(row))
        if row["status"] in (ResponseStatus.FAILED, ResponseStatus.CANCELLED):
            span.set_status(Status(StatusCode.ERROR, row["error"][:500]))
        span.end(end_time=end)


def _call_span(row: dict[str, Any]) -> tuple[int, int]:
    """(start, end) of a step's call: the row is written as the call ends, after `latency_ms` of it."""
    end = _ns(row["created_at"])
    return end - row["latency_ms"] * 1_000_000, end


def _cost(nano: int | None, currency: str | None) -> dict[str, Any]:
    if nano is None:
        return {}
    return {"orchestrator.cost": nano / PER_UNIT, "orchestrator.cost.currency": currency or ""}


def _run_attributes(run: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    currencies = {row["cost_currency"] for row in rows if row["cost_nano"]}
    known = all(row["cost_nano"] is not None for row in rows)
    attributes: dict[str, Any] = {
        "orchestrator.run.id": run["id"], "orchestrator.run.status": run["status"],
        "orchestrator.workflow.name": run["workflow_name"], "orchestrator.workflow.id": run["workflow_id"],
        "orchestrator.release.id": run["release_id"], "orchestrator.release.number": run["release__number"],
        "orchestrator.release.hash": run["release__content_hash"], "orchestrator.label": run["label"] or None,
        "orchestrator.steps": len(rows),
        "gen_ai.usage.input_tokens": run["prompt_tokens"], "gen_ai.usage.output_tokens": run["completion_tokens"],
    }
    if known and len(currencies) <= 1:  # a total never adds two currencies nor counts an unknown cost as zero
        attributes.update(_cost(sum(row["cost_nano"] for row in rows), next(iter(currencies), "")))
    if run["status"] in (RunStatus.FAILED, RunStatus.BUDGET_REACHED):
        attributes["error.type"] = run["status"]
    return {name: value for name, value in attributes.items() if value is not None}


def _error_type(row: dict[str, Any]) -> str | None:
    if row["status"] == ResponseStatus.CANCELLED:
        return "cancelled"
    if row["status"] != ResponseStatus.FAILED:
        return None
    failed = [attempt for attempt in row["attempts"] if not attempt.get("ok")]
    return (failed[-1].get("kind") if failed else None) or "_OTHER"


def _chat_attributes(run: dict[str, Any], row: dict[str, Any], base_url: str) -> dict[str, Any]:
    params = row["request_params"] or {}
    address = urlsplit(base_url)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": provider_name(base_url) if base_url else "openai",
        "gen_ai.request.model": row["model"], "gen_ai.request.temperature": params.get("temperature"),
        "gen_ai.request.max_tokens": params.get("max_tokens") or params.get("max_completion_tokens"),
        "gen_ai.request.top_p": params.get("top_p"), "gen_ai.request.seed": params.get("seed"),
        "gen_ai.response.finish_reasons": [row["finish_reason"]] if row["finish_reason"] else None,
        "gen_ai.usage.input_tokens": row["prompt_tokens"], "gen_ai.usage.output_tokens": row["completion_tokens"],
        "error.type": _error_type(row),
        "server.address": address.hostname, "server.port": address.port,
        "orchestrator.run.id": run["id"], "orchestrator.workflow.name": run["workflow_name"],
        "orchestrator.release.id": run["release_id"],
        "orchestrator.step.index": row["index"], "orchestrator.step.key": row["output_key"],
        "orchestrator.step.item": row.get("item") or None, "orchestrator.step.status": row["status"],
        "orchestrator.payload.name": row["payload_name"], "orchestrator.endpoint.name": row["endpoint_name"],
        "orchestrator.step.attempts": len(row["attempts"]), "orchestrator.step.ttft_ms": row["ttft_ms"],
        **_cost(row["cost_nano"], row["cost_currency"]),
    }
    return {name: value for name, value in attributes.items() if value is not None and not isinstance(value, dict)}


def _content_attributes(row: dict[str, Any]) -> dict[str, str]:
    """Prompt and answer, as the GenAI conventions' gen_ai.input.messages / gen_ai.output.messages (JSON)."""
    sent = [{"role": message.get("role", "user"),
             "parts": [{"type": "text", "content": message.get("content", "")}]} for message in row["messages"] or []]
    answer = [{"role": "assistant", "parts": [{"type": "text", "content": row["output"]}],
               "finish_reason": row["finish_reason"] or row["status"]}]
    return {"gen_ai.input.messages": json.dumps(sent, ensure_ascii=False),
            "gen_ai.output.messages": json.dumps(answer, ensure_ascii=False)}


# --- this process's builder -----------------------------------------------------------------------
_builder: TraceBuilder | None = None


def _run_finished(run_id: int, status: str) -> None:
    if _builder is not None:
        _builder.submit(run_id)


def configure(*, endpoint: str, service_name: str = "llm-orchestrator", timeout: float = 5.0,
              capture_content: bool = False) -> TraceBuilder:
    """Trace every run this process finishes, to `endpoint` (replacing an earlier configuration)."""
    global _builder
    shutdown()
    _builder = TraceBuilder(endpoint=endpoint, service_name=service_name, timeout=timeout,
                            capture_content=capture_content)
    events.run_finished_observers.append(_run_finished)
    return _builder


def shutdown() -> None:
    """Stop tracing: build and export what is queued, then nothing more is observed."""
    global _builder
    if _run_finished in events.run_finished_observers:
        events.run_finished_observers.remove(_run_finished)
    builder, _builder = _builder, None
    if builder is not None:
        builder.stop()


def install() -> None:
    """At start-up, from settings; at exit, the queued runs' traces go out (within the export timeout)."""
    configure(endpoint=settings.OTEL_TRACES_ENDPOINT, service_name=settings.OTEL_SERVICE_NAME,
              timeout=settings.OTEL_EXPORT_TIMEOUT_SECONDS, capture_content=settings.OTEL_CAPTURE_MESSAGE_CONTENT)
    atexit.register(shutdown)
