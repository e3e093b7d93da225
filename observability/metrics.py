"""Prometheus metrics of the engine: counted where steps and runs finish, read from the database at scrape time.

Every series is labelled by endpoint name and model at most (never a run id), so their number stays
bounded by the endpoints and models configured. Counters live in the process that ran the step: the
web server in embedded mode, each worker in distributed mode (`worker_server_start`).
"""
from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, Counter, generate_latest, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from core.money import PER_UNIT
from observability.access import ALLOWED, NO_TOKEN, metrics_access
from observability.selectors import engine_backlog
from prices.book import COST_COMPUTED, Rate, step_cost
from runs.engine import events
from runs.engine.ledger import Claim, StepResult
from runs.models import ResponseStatus, call_was_made

logger = logging.getLogger(__name__)

ENDPOINT_MODEL = ("endpoint", "model")
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

RUNS_STARTED = Counter("orchestrator_runs_started", "Runs whose first step was claimed in this process.")
RUNS_FINISHED = Counter("orchestrator_runs_finished", "Runs that ended, by final status.", ["status"])
ERRORS = Counter("orchestrator_llm_errors", "Failed LLM attempts, by kind (rate_limited, timeout, auth, "
                 "bad_response, invalid_output, ...: the attempts' `kind`).", [*ENDPOINT_MODEL, "kind"])
CACHE_HITS = Counter("orchestrator_cache_hits", "Steps answered from the response cache.", ENDPOINT_MODEL)


def run_started(run_id: int) -> None:
    RUNS_STARTED.inc()


def run_finished(run_id: int, status: str) -> None:
    RUNS_FINISHED.labels(status).inc()


class _Histogram:
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        running, found = 0, []
        for bound, count in zip((*map(floatToGoString, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            found.append((bound, running))
        return found


class _StepSeries:
    """One endpoint and model's step series as plain numbers: a step adds to a few of them (no lock:
    steps finish on the process's event loop); `StepSeriesCollector` reads them at scrape time."""

    __slots__ = ("cost", "latency", "priced", "retries", "steps", "tokens_in", "tokens_out", "ttft")

    def __init__(self) -> None:
        self.steps: dict[str, int] = {}
        self.latency = _Histogram(LATENCY_BUCKETS)
        self.ttft = _Histogram(TTFT_BUCKETS)
        self.tokens_in = self.tokens_out = self.retries = 0
        # Costs known as amounts (reported by the server), and the token sums of steps priced by the book,
        # per rate: a price is linear in tokens, so the book's cost of the sums is the sum of the costs.
        self.cost: dict[str, float] = {}
        self.priced: dict[Rate, list[int]] = {}

    def costs(self) -> dict[str, float]:
        totals = dict(self.cost)
        for rate, (prompt, cached, completion, reasoning, latency_ms) in list(self.priced.items()):
            cost = step_cost(rate, prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached,
                             reasoning_tokens=reasoning, latency_ms=latency_ms)
            if cost.nano and cost.currency:
                totals[cost.currency] = totals.get(cost.currency, 0.0) + cost.nano / PER_UNIT
        return totals


_series: dict[tuple[str, str], _StepSeries] = {}


def step_finished(claim: Claim, result: StepResult) -> None:
    payload = claim.step["payload"]
    key = (payload.get("endpoint_name", ""), payload["model"])
    series = _series.get(key)
    if series is None:
        series = _series[key] = _StepSeries()
    series.steps[result.status] = series.steps.get(result.status, 0) + 1
    if result.cache.get("cache_status") == "hit":
        CACHE_HITS.labels(*key).inc()  # answered from the response cache: no call, nothing spent
        return
    if not call_was_made(status=result.status, attempts=result.attempts, prompt_tokens=result.prompt_tokens,
                         completion_tokens=result.completion_tokens):
        return
    series.latency.observe(result.latency_ms / 1000)
    if result.ttft_ms is not None:
        series.ttft.observe(result.ttft_ms / 1000)
    series.tokens_in += result.prompt_tokens
    series.tokens_out += result.completion_tokens
    if len(result.attempts) > 1 or (result.attempts and not result.attempts[0].get("ok")):
        series.retries += len(result.attempts) - 1
        for attempt in result.attempts:
            if not attempt.get("ok"):
                ERRORS.labels(*key, attempt.get("kind") or "other").inc()
    if claim.rate is not None:
        _count_cost(claim, result, series)


def _count_cost(claim: Claim, result: StepResult, series: _StepSeries) -> None:
    """The step's cost by the price its claim resolved (the ledger's own figure, barring a price
    that changed during the call). A step priced by the book adds its tokens to its rate's sums,
    which the scrape prices (a few additions instead of the book's arithmetic per step)."""
    rate = claim.rate
    assert rate is not None
    cut_off = result.status != ResponseStatus.SUCCEEDED and bool(result.output)
    if result.reported_cost is not None or cut_off:
        cost = step_cost(rate, prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                         latency_ms=result.latency_ms, reported=result.reported_cost, cut_off=cut_off)
        if cost.nano and cost.currency:
            series.cost[cost.currency] = series.cost.get(cost.currency, 0.0) + cost.nano / PER_UNIT
        return
    if rate.source != COST_COMPUTED:
        return  # free (nothing) or unknown (never counted as zero)
    sums = series.priced.get(rate)
    if sums is None:
        sums = series.priced[rate] = [0, 0, 0, 0, 0]
    sums[0] += result.prompt_tokens
    sums[1] += min(max(result.cached_tokens or 0, 0), result.prompt_tokens)
    sums[2] += result.completion_tokens
    sums[3] += min(max(result.reasoning_tokens or 0, 0), result.completion_tokens)
    sums[4] += result.latency_ms


class StepSeriesCollector(Collector):
    """The step series of this process, by endpoint and model."""

    def collect(self) -> Iterator[Metric]:
        found = dict(_series)
        steps = CounterMetricFamily("orchestrator_steps", "Steps recorded, by status.", labels=[*ENDPOINT_MODEL, "status"])
        latency = HistogramMetricFamily("orchestrator_step_latency_seconds", "LLM time of a step (all its attempts).",
                                        labels=list(ENDPOINT_MODEL))
        ttft = HistogramMetricFamily("orchestrator_step_ttft_seconds", "Time to the first token of a streamed step.",
                                     labels=list(ENDPOINT_MODEL))
        tokens = CounterMetricFamily("orchestrator_llm_tokens", "Tokens of steps, by type (input: prompt, output: "
                                     "completion).", labels=[*ENDPOINT_MODEL, "type"])
        cost = CounterMetricFamily("orchestrator_llm_cost", "What steps cost by the price book, in units of the currency.",
                                   labels=[*ENDPOINT_MODEL, "currency"])
        retries = CounterMetricFamily("orchestrator_llm_retries", "Attempts after a step's first (retries, dialect "
                                      "changes, structured-output retries).", labels=list(ENDPOINT_MODEL))
        for (endpoint, model), series in found.items():
            for status, count in dict(series.steps).items():
                steps.add_metric([endpoint, model, status], count)
            latency.add_metric([endpoint, model], series.latency.buckets(), series.latency.total)
            ttft.add_metric([endpoint, model], series.ttft.buckets(), series.ttft.total)
            tokens.add_metric([endpoint, model, "input"], series.tokens_in)
            tokens.add_metric([endpoint, model, "output"], series.tokens_out)
            retries.add_metric([endpoint, model], series.retries)
            for currency, amount in series.costs().items():
                cost.add_metric([endpoint, model, currency], amount)
        yield from (steps, latency, ttft, tokens, cost, retries)


REGISTRY.register(StepSeriesCollector())


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
