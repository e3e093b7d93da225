"""Prometheus metrics of the engine: counted where steps and runs finish, read from the database at scrape time.

Every series is labelled by endpoint name and model at most (never a run id), so their number stays
bounded by the endpoints and models configured. Counters live in the process that ran the step: the
web server in embedded mode, each worker in distributed mode (`worker_server_start`).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.money import PER_UNIT
from observability.access import ALLOWED, NO_TOKEN, metrics_access
from observability.selectors import engine_backlog
from prices.book import step_cost
from runs.engine import events
from runs.engine.ledger import Claim, StepResult
from runs.models import ResponseStatus, call_was_made

logger = logging.getLogger(__name__)

ENDPOINT_MODEL = ("endpoint", "model")
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

RUNS_STARTED = Counter("orchestrator_runs_started", "Runs whose first step was claimed in this process.")
RUNS_FINISHED = Counter("orchestrator_runs_finished", "Runs that ended, by final status.", ["status"])
STEPS = Counter("orchestrator_steps", "Steps recorded, by status.", [*ENDPOINT_MODEL, "status"])
STEP_LATENCY = Histogram("orchestrator_step_latency_seconds", "LLM time of a step (all its attempts).",
                         ENDPOINT_MODEL, buckets=LATENCY_BUCKETS)
STEP_TTFT = Histogram("orchestrator_step_ttft_seconds", "Time to the first token of a streamed step.",
                      ENDPOINT_MODEL, buckets=TTFT_BUCKETS)
TOKENS = Counter("orchestrator_llm_tokens", "Tokens of steps, by type (input: prompt, output: completion).",
                 [*ENDPOINT_MODEL, "type"])
COST = Counter("orchestrator_llm_cost", "What steps cost by the price book, in units of the currency.",
               [*ENDPOINT_MODEL, "currency"])
ERRORS = Counter("orchestrator_llm_errors", "Failed LLM attempts, by kind (rate_limited, timeout, auth, "
                 "bad_response, invalid_output, ...: the attempts' `kind`).", [*ENDPOINT_MODEL, "kind"])
RETRIES = Counter("orchestrator_llm_retries", "Attempts after a step's first (retries, dialect changes, "
                  "structured-output retries).", ENDPOINT_MODEL)
CACHE_HITS = Counter("orchestrator_cache_hits", "Steps answered from the response cache.", ENDPOINT_MODEL)


def cache_hit(endpoint: str, model: str) -> None:
    """The response cache answered a step for this endpoint and model."""
    CACHE_HITS.labels(endpoint, model).inc()


def run_started(run_id: int) -> None:
    RUNS_STARTED.inc()


def run_finished(run_id: int, status: str) -> None:
    RUNS_FINISHED.labels(status).inc()


def step_finished(claim: Claim, result: StepResult) -> None:
    payload = claim.step["payload"]
    labels = (payload.get("endpoint_name", ""), payload["model"])
    STEPS.labels(*labels, result.status).inc()
    called = call_was_made(status=result.status, attempts=result.attempts, prompt_tokens=result.prompt_tokens,
                           completion_tokens=result.completion_tokens)
    if not called:
        return
    STEP_LATENCY.labels(*labels).observe(result.latency_ms / 1000)
    if result.ttft_ms is not None:
        STEP_TTFT.labels(*labels).observe(result.ttft_ms / 1000)
    if result.prompt_tokens:
        TOKENS.labels(*labels, "input").inc(result.prompt_tokens)
    if result.completion_tokens:
        TOKENS.labels(*labels, "output").inc(result.completion_tokens)
    for attempt in result.attempts:
        if not attempt.get("ok"):
            ERRORS.labels(*labels, attempt.get("kind") or "other").inc()
    if len(result.attempts) > 1:
        RETRIES.labels(*labels).inc(len(result.attempts) - 1)
    _count_cost(claim, result, labels)


def _count_cost(claim: Claim, result: StepResult, labels: tuple[str, str]) -> None:
    """The step's cost by the price its claim resolved (the ledger's own figure, barring a price
    that changed during the call)."""
    if claim.rate is None:
        return
    cost = step_cost(claim.rate, prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                     cached_tokens=result.cached_tokens, reasoning_tokens=result.reasoning_tokens,
                     latency_ms=result.latency_ms, reported=result.reported_cost,
                     cut_off=result.status != ResponseStatus.SUCCEEDED and bool(result.output))
    if cost.nano and cost.currency:
        COST.labels(*labels, cost.currency).inc(cost.nano / PER_UNIT)


class EngineBacklog(Collector):
    """Gauges read from the database at scrape time (so they agree across processes): active runs
    by status, steps still to run, the age of the oldest queued run."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        backlog = engine_backlog()
        runs = GaugeMetricFamily("orchestrator_runs_active", "Runs queued, running or cancelling.", labels=["status"])
        for status, count in backlog["runs"].items():
            runs.add_metric([str(status)], count)
        yield runs
        yield GaugeMetricFamily("orchestrator_steps_queued", "Steps of active runs still to run.",
                                value=backlog["steps_queued"])
        yield GaugeMetricFamily("orchestrator_oldest_queued_run_age_seconds",
                                "How long the oldest queued run has waited (0: none waits).",
                                value=backlog["oldest_queued_seconds"])


# The database's gauges: only the web server's /metrics has them (workers would repeat them).
BACKLOG = CollectorRegistry()
BACKLOG.register(EngineBacklog())


def exposition() -> bytes:
    """This process's series and the database's gauges, in Prometheus' text format."""
    return generate_latest(REGISTRY) + generate_latest(BACKLOG)


def install() -> None:
    """Count this process's steps and runs (once, at start-up)."""
    for observers, observer in ((events.run_started_observers, run_started),
                                (events.step_finished_observers, step_finished),
                                (events.run_finished_observers, run_finished)):
        if observer not in observers:
            observers.append(observer)


# --- a worker's own endpoint ----------------------------------------------------------------------
class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _guarded(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        verdict = metrics_access(authorization=environ.get("HTTP_AUTHORIZATION", ""),
                                 address=environ.get("REMOTE_ADDR", ""))
        if verdict == ALLOWED:
            return app(environ, start_response)
        headers = [("Content-Type", "text/plain")]
        if verdict == NO_TOKEN:
            headers.append(("WWW-Authenticate", "Bearer"))
        start_response("401 Unauthorized" if verdict == NO_TOKEN else "403 Forbidden", headers)
        return [b"not allowed\n"]
    return guarded


def worker_server_start(*, address: str, port: int) -> WSGIServer:
    """Serve this process's metrics on their own port, in a daemon thread, behind the same guard as /metrics."""
    server = make_server(address, port, _guarded(make_wsgi_app(REGISTRY)), _Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    logger.info("metrics of this worker on http://%s:%s/metrics", address, server.server_port)
    return server
