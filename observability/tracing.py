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
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection
from django.utils import timezone
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

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
# A finished run waits at most this long for others to be traced with it.
GATHER_SECONDS = 1.0
# The builder closes its database connection after this long without a run to trace.
IDLE_SECONDS = 5.0
# Endpoints' hosts (for gen_ai.provider.name) are read again after this long; a deleted endpoint is "openai".
ENDPOINTS_CACHE_SECONDS = 60.0
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


def _span_id() -> int:
    return random.getrandbits(64) or 1


@dataclass
class _Flush:
    """A marker in the queue: set once every run queued before it has its trace built."""

    done: threading.Event


_STOP = object()
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_SCOPE = InstrumentationScope("llm-orchestrator")
_ERROR = Status(StatusCode.ERROR)


class TraceBuilder:
    """The thread that turns finished runs into traces, and the SDK pipeline that exports them.

    The spans are made as the SDK's finished spans (`ReadableSpan`) with the times the rows recorded,
    and handed to its BatchSpanProcessor: no tracer, no live span, no attribute re-validation (the
    values are ours), which makes a run's trace several times cheaper to build (docs/performance.md)."""

    def __init__(self, *, endpoint: str, service_name: str, timeout: float, capture_content: bool) -> None:
        self.resource = Resource.create({"service.name": service_name})
        self.processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=timeout))
        self.capture_content = capture_content
        self.pending: queue.Queue[Any] = queue.Queue(maxsize=MAX_PENDING_RUNS)
        self.dropped = 0
        self.providers: dict[str, str] = {}
        self.providers_read_at = 0.0
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
        return done.wait(timeout) and self.processor.force_flush(int(timeout * 1000))

    def stop(self, timeout: float = 5.0) -> None:
        if self.thread.is_alive():
            self.pending.put(_STOP)
            self.thread.join(timeout)
        self.processor.shutdown()

    def _work(self) -> None:
        while True:
            try:
                batch = [self.pending.get(timeout=IDLE_SECONDS)]
            except queue.Empty:
                connection.close()  # idle: hold no database connection
                continue
            self._gather(batch)
            run_ids = [entry for entry in batch if isinstance(entry, int)]
            try:
                if run_ids:
                    self._build(run_ids)
            except Exception:
                logger.warning("tracing: could not build the traces of runs %s", run_ids, exc_info=True)
            for entry in batch:
                if isinstance(entry, _Flush):
                    entry.done.set()
            if _STOP in batch:
                connection.close()
                return

    def _gather(self, batch: list[Any]) -> None:
        """More runs for the batch, for up to GATHER_SECONDS: a few reads for many runs instead of three
        each, and the engine's loop is interrupted once a second instead of at every run."""
        deadline = time.monotonic() + GATHER_SECONDS
        while len(batch) < BUILD_BATCH and isinstance(batch[-1], int):
            remaining = deadline - time.monotonic()
            try:
                batch.append(self.pending.get(timeout=remaining) if remaining > 0 else self.pending.get_nowait())
            except queue.Empty:
                return

    def _build(self, run_ids: list[int]) -> None:
        fields = _RESPONSE_FIELDS + (_CONTENT_FIELDS if self.capture_content else ())
        order = ("run_id", "index", "item") if _HAS_ITEM else ("run_id", "index")
        steps: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for row in Response.objects.filter(run_id__in=run_ids).order_by(*order).values(*fields):
            steps[row["run_id"]].append(row)
        providers = self._providers({row["endpoint_name"] for rows in steps.values() for row in rows})
        for run in Run.objects.filter(pk__in=run_ids).values(*_RUN_FIELDS):
            self.trace_run(run, steps.get(run["id"], []), providers)

    def _providers(self, names: set[str]) -> dict[str, str]:
        """gen_ai.provider.name by endpoint name, read again after ENDPOINTS_CACHE_SECONDS."""
        now = time.monotonic()
        if now - self.providers_read_at > ENDPOINTS_CACHE_SECONDS or not names <= self.providers.keys():
            self.providers = {name: provider_name(base_url)
                              for name, base_url in Endpoint.objects.values_list("name", "base_url")}
            self.providers.update((name, "openai") for name in names - self.providers.keys())  # deleted since
            self.providers_read_at = now
        return self.providers

    def _emit(self, name: str, context: SpanContext, parent: SpanContext | None, kind: SpanKind,
              attributes: dict[str, Any], start: int, end: int, failed: bool) -> None:
        self.processor.on_end(ReadableSpan(
            name=name, context=context, parent=parent, resource=self.resource, attributes=attributes, kind=kind,
            status=_ERROR if failed else Status(StatusCode.UNSET), start_time=start, end_time=end,
            instrumentation_scope=_SCOPE))

    def trace_run(self, run: dict[str, Any], rows: list[dict[str, Any]], providers: dict[str, str]) -> None:
        """One run's trace, from its row and its steps' rows (`providers`: gen_ai.provider.name by endpoint name)."""
        trace_id = trace_id_of(run["id"], run["created_at"])
        root = SpanContext(trace_id, _span_id(), is_remote=False, trace_flags=_SAMPLED)
        by_index: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_index[row["index"]].append(row)
        end = _ns(run["finished_at"] or timezone.now())
        for index_rows in by_index.values():
            if any(row.get("item") for row in index_rows):
                step_end = self._map_step(run, index_rows, root, providers)
            else:
                step_end = max(self._chat_span(row, root, providers) for row in index_rows)
            end = max(end, step_end)  # finished_at is taken just before the last step's row is written
        self._emit(f"workflow {run['workflow_name']}", root, None, SpanKind.INTERNAL, _run_attributes(run, rows),
                   _ns(run["created_at"]), end, run["status"] == RunStatus.FAILED)

    def _map_step(self, run: dict[str, Any], rows: list[dict[str, Any]], parent: SpanContext,
                  providers: dict[str, str]) -> int:
        """A step over a list: a span for the step (its own row, item 0), a chat span per item's call under it."""
        items = [row for row in rows if row.get("item")]
        step = SpanContext(parent.trace_id, _span_id(), is_remote=False, trace_flags=_SAMPLED)
        end = max([_call_span(row)[1] for row in rows] + [self._chat_span(row, step, providers) for row in items])
        first = rows[0]
        self._emit(f"step {first['output_key']}", step, parent, SpanKind.INTERNAL,
                   {"orchestrator.step.index": first["index"], "orchestrator.step.key": first["output_key"],
                    "orchestrator.step.items": len(items)},
                   min(_call_span(row)[0] for row in rows), end, any(row["status"] == ResponseStatus.FAILED for row in rows))
        return end

    def _chat_span(self, row: dict[str, Any], parent: SpanContext, providers: dict[str, str]) -> int:
        start, end = _call_span(row)
        attributes = _chat_attributes(row, providers.get(row["endpoint_name"], "openai"))
        if self.capture_content:
            attributes.update(_content_attributes(row))
        self._emit(f"chat {row['model']}", SpanContext(parent.trace_id, _span_id(), is_remote=False, trace_flags=_SAMPLED),
                   parent, SpanKind.CLIENT, attributes, start, end,
                   row["status"] in (ResponseStatus.FAILED, ResponseStatus.CANCELLED))
        return end


def _call_span(row: dict[str, Any]) -> tuple[int, int]:
    """(start, end) of a step's call: the row is written as the call ends, after `latency_ms` of it."""
    end = _ns(row["created_at"])
    return end - row["latency_ms"] * 1_000_000, end


def _cost(nano: int | None, currency: str | None, attributes: dict[str, Any]) -> None:
    if nano is not None:
        attributes["orchestrator.cost"] = nano / PER_UNIT
        attributes["orchestrator.cost.currency"] = currency or ""


def _run_attributes(run: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "orchestrator.run.id": run["id"], "orchestrator.run.status": run["status"],
        "orchestrator.workflow.name": run["workflow_name"], "orchestrator.release.id": run["release_id"],
        "gen_ai.usage.input_tokens": run["prompt_tokens"], "gen_ai.usage.output_tokens": run["completion_tokens"],
    }
    if run["label"]:
        attributes["orchestrator.label"] = run["label"]
    currencies = {row["cost_currency"] for row in rows if row["cost_nano"]}
    if len(currencies) <= 1 and all(row["cost_nano"] is not None for row in rows):
        # A total never adds two currencies nor counts an unknown cost as zero.
        _cost(sum(row["cost_nano"] for row in rows), next(iter(currencies), ""), attributes)
    if run["status"] in (RunStatus.FAILED, RunStatus.BUDGET_REACHED):
        attributes["error.type"] = run["status"]
    return attributes


def _error_type(row: dict[str, Any]) -> str | None:
    if row["status"] == ResponseStatus.CANCELLED:
        return "cancelled"
    if row["status"] != ResponseStatus.FAILED:
        return None
    failed = [attempt for attempt in row["attempts"] if not attempt.get("ok")]
    return (failed[-1].get("kind") if failed else None) or "_OTHER"


def _chat_attributes(row: dict[str, Any], provider: str) -> dict[str, Any]:
    """The GenAI conventions' attributes of a chat call, and ours; the run's own are on the run span.
    Optional ones only when they have a value (each attribute costs its export)."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": provider, "gen_ai.request.model": row["model"],
        "gen_ai.usage.input_tokens": row["prompt_tokens"], "gen_ai.usage.output_tokens": row["completion_tokens"],
        "orchestrator.step.index": row["index"], "orchestrator.step.key": row["output_key"],
        "orchestrator.endpoint.name": row["endpoint_name"],
    }
    params = row["request_params"] or {}
    for name, value in (("gen_ai.request.temperature", params.get("temperature")),
                        ("gen_ai.request.max_tokens", params.get("max_tokens") or params.get("max_completion_tokens")),
                        ("gen_ai.request.top_p", params.get("top_p")), ("gen_ai.request.seed", params.get("seed")),
                        ("orchestrator.step.item", row.get("item") or None), ("orchestrator.step.ttft_ms", row["ttft_ms"]),
                        ("error.type", _error_type(row))):
        if value is not None:
            attributes[name] = value
    if row["finish_reason"]:
        attributes["gen_ai.response.finish_reasons"] = (row["finish_reason"],)
    if len(row["attempts"]) > 1:
        attributes["orchestrator.step.attempts"] = len(row["attempts"])
    _cost(row["cost_nano"], row["cost_currency"], attributes)
    return attributes


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
