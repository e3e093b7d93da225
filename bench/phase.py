"""One implementation, one phase, in this (fresh) process; prints one JSON line on stdout.

bench/run.py starts this once per implementation x phase x rep. By hand (fake server running):

    .venv/bin/python bench/phase.py run --impl raw --phase seq --base-url http://127.0.0.1:8001/v1 --latency-ms 0
    .venv/bin/python bench/phase.py run --impl runner --phase thr --db /tmp/bench/template.sqlite3 \\
        --base-url http://127.0.0.1:8003/v1 --latency-ms 100 --chains 500 --concurrency 100

Phases (the method of ../shared/bench/baselines.py, whose run_phase this follows):
    seq    5 warm-up chains, then N sequential chains: overhead/step = (median chain - 3 x latency) / 3
    thr    5 warm-up chains, then N chains at concurrency C (asyncio.Semaphore)
    scale  N chains all at once; `runner` first starts all N runs (run_start), then gathers execute_run

Every chain's final output is compared with fakellm.server.reply_text applied three times, after
the timed part (runner and api read the outputs back from the database or the WebSocket).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODEL = "fake-model"
API_KEY = "sk-fake"
# The chain of issue 7, as Jinja templates (runner, api) and as the raw SDK sends it.
STEPS = [
    "Write a short outline about {{ topic }}.",
    "Expand this outline into a paragraph:\n{{ previous }}",
    "Summarize this paragraph in one sentence:\n{{ previous }}",
]
LOCKED = "database is locked"


def workflow_name(latency_ms: float, stream: bool) -> str:
    """The workflow bench/run.py's setup-db made for one fake server and stream mode."""
    return f"bench-{int(latency_ms)}-{'stream' if stream else 'json'}"


def expected_output(topic: str, tokens: int) -> str:
    from fakellm.server import reply_text

    text = reply_text(STEPS[0].replace("{{ topic }}", topic), tokens)
    for prompt in STEPS[1:]:
        text = reply_text(prompt.replace("{{ previous }}", text), tokens)
    return text


def proc_status_kb(key: str, pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return -1


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LockedCounter(logging.Handler):
    """Counts log records (with their tracebacks) that mention a locked SQLite database."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.locked = 0
        self.errors = 0

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage() + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        self.locked += LOCKED in text
        self.errors += record.levelno >= logging.ERROR


# --- implementations ----------------------------------------------------------------------------
@dataclass
class Impl:
    """prepare(topic) -> handle (runner: the started run), execute(handle) -> handle to verify later."""

    prepare: Callable[[str], Awaitable[Any]]
    execute: Callable[[Any], Awaitable[Any]]
    outputs: Callable[[list[Any]], Awaitable[list[str | None]]]
    aclose: Callable[[], Awaitable[None]]
    stats: Callable[[], dict[str, Any]] = dict
    rss_pid: int | str = "self"  # whose RSS counts: for `api`, the daphne server's
    extra: dict[str, Any] = field(default_factory=dict)

    async def run_chain(self, topic: str) -> Any:
        return await self.execute(await self.prepare(topic))


async def _identity(value: Any) -> Any:
    return value


async def _as_is(values: list[Any]) -> list[Any]:
    return values


def _sdk_impl(client: Any, stream: bool) -> Impl:
    """The raw chain: three awaited chat.completions.create calls (copied from shared/bench _sdk_chain)."""

    async def execute(topic: str) -> str:
        previous = ""
        for template in STEPS:
            content = template.replace("{{ topic }}", topic).replace("{{ previous }}", previous)
            messages = [{"role": "user", "content": content}]
            if stream:
                parts = []
                chunks = await client.chat.completions.create(model=MODEL, messages=messages, stream=True)
                async for chunk in chunks:
                    if chunk.choices and chunk.choices[0].delta.content:
                        parts.append(chunk.choices[0].delta.content)
                previous = "".join(parts)
            else:
                response = await client.chat.completions.create(model=MODEL, messages=messages)
                previous = response.choices[0].message.content
        return previous

    return Impl(prepare=_identity, execute=execute, outputs=_as_is, aclose=client.close)


async def make_raw(a: argparse.Namespace) -> Impl:
    from openai import AsyncOpenAI

    # SDK defaults: httpx2 pool of max_connections=1000, max_keepalive_connections=100.
    return _sdk_impl(AsyncOpenAI(base_url=a.base_url, api_key=API_KEY, max_retries=2), a.stream)


async def make_raw_aiohttp(a: argparse.Namespace) -> Impl:
    from openai import AsyncOpenAI, DefaultAioHttpClient

    # The transport llm/client.py uses (TCPConnector(limit=1000, limit_per_host=0)).
    client = AsyncOpenAI(base_url=a.base_url, api_key=API_KEY, max_retries=2, http_client=DefaultAioHttpClient())
    return _sdk_impl(client, a.stream)


def _django_env(db_path: str) -> dict[str, str]:
    """Production settings on the benchmark's SQLite file: DEBUG off, embedded runs, in-memory channels."""
    return {"DJANGO_SETTINGS_MODULE": "orchestrator.settings", "DATABASE_URL": f"sqlite:///{db_path}",
            "DEBUG": "0", "SECRET_KEY": "bench-secret-key-not-for-production", "RUNS_BACKEND": "embedded",
            # Production needs /metrics guarded; the bench scrapes nothing (metrics are still counted).
            "METRICS_ALLOWED_NETWORKS": "127.0.0.0/8",
            "REDIS_URL": "", "LOG_LEVEL": "WARNING",
            # The fake server is on loopback, which production refuses for endpoints.
            "LLM_ENDPOINT_ALLOW_LOOPBACK": "1",
            # Plain HTTP on loopback: no redirect to HTTPS (production default, orchestrator/settings.py).
            "SECURE_SSL_REDIRECT": "0",
            # The per-user run throttle stays in the path, at a rate the benchmark never reaches.
            "RUNS_THROTTLE_RATE": "1000000/minute"}


_workdirs: list[str] = []  # removed at the end of the phase unless BENCH_KEEP=1
_servers: list[subprocess.Popen[bytes]] = []  # stopped when this process ends, even on an error


def _db_copy(template: str) -> str:
    """A fresh copy of the migrated template database, in its own temp dir."""
    workdir = tempfile.mkdtemp(prefix="orch-bench-")
    _workdirs.append(workdir)
    db_path = os.path.join(workdir, "db.sqlite3")
    shutil.copyfile(template, db_path)
    return db_path


async def make_runner(a: argparse.Namespace) -> Impl:
    os.environ.update(_django_env(_db_copy(a.db)))
    import django

    django.setup()
    from asgiref.sync import sync_to_async

    from runs import services
    from runs.engine import Claim, Finished, dbthread, execute_run, new_owner
    from runs.models import Response, Run
    from workflows.models import Workflow

    counter = LockedCounter()
    logging.getLogger().addHandler(counter)
    workflow = await Workflow.objects.aget(name=workflow_name(a.latency_ms, a.stream))
    # A chain starts its run and executes it, as the CLI does: the first step is claimed as the run
    # starts. The scale phase times the execution alone, so there the claim stays in execute_run.
    claim_on_start = a.phase != "scale"

    async def prepare(topic: str) -> tuple[int, str | None, Claim | Finished | None]:
        if not claim_on_start:
            return (await dbthread.call(services.run_start, workflow=workflow, inputs={"topic": topic}, user=None)).pk, None, None
        owner = new_owner()
        run, claim = await dbthread.call(services.run_start_claimed, workflow=workflow, inputs={"topic": topic},
                                         user=None, owner=owner)
        return run.pk, owner, claim

    async def execute(started: tuple[int, str | None, Claim | Finished | None]) -> int:
        run_id, owner, claim = started
        status = await execute_run(run_id, owner=owner, claim=claim)
        if status != "succeeded":
            raise RuntimeError(f"run {run_id} ended {status}")
        return run_id

    @sync_to_async
    def outputs(run_ids: list[int]) -> list[str | None]:
        by_id: dict[int, str] = {}
        for start in range(0, len(run_ids), 500):
            by_id.update(Run.objects.filter(pk__in=run_ids[start:start + 500]).values_list("pk", "output"))
        return [by_id.get(run_id) for run_id in run_ids]

    persisted: dict[str, int] = {}

    async def aclose() -> None:
        from llm import client

        persisted["responses"] = await Response.objects.filter(status="succeeded").acount()
        persisted["runs"] = await Run.objects.filter(status="succeeded").acount()
        await client.aclose_all()

    def stats() -> dict[str, Any]:
        return {"db_locked": counter.locked, "log_errors": counter.errors,
                "succeeded_runs": persisted.get("runs"), "succeeded_responses": persisted.get("responses")}

    return Impl(prepare=prepare, execute=execute, outputs=outputs, aclose=aclose, stats=stats)


async def make_api(a: argparse.Namespace) -> Impl:
    """A daphne server of the project on its own DB copy; runs created over REST, watched over WebSocket."""
    import aiohttp

    db_path = _db_copy(a.db)
    fixtures = json.loads(Path(a.db).with_suffix(".json").read_text())
    port = free_port()
    log_path = os.path.join(os.path.dirname(db_path), "daphne.log")
    log = open(log_path, "wb")  # closed in aclose
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "orchestrator.asgi:application"],
        cwd=ROOT, env={**os.environ, **_django_env(db_path)}, stdout=log, stderr=subprocess.STDOUT)
    _servers.append(server)
    # The server does the orchestrator's work: it shares the client's CPU (cpu0 when pinned).
    if a.server_cpu is not None:
        os.sched_setaffinity(server.pid, {a.server_cpu})
    base = f"http://127.0.0.1:{port}"
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    for _ in range(300):
        try:
            async with session.get(f"{base}/healthz") as response:
                if response.status == 200:
                    break
        except aiohttp.ClientError:
            pass
        if server.poll() is not None:
            raise RuntimeError(f"daphne exited with {server.returncode}; see {log_path}")
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError("daphne did not answer /healthz")

    # BENCH_PROFILE_SERVER=<file>: py-spy (raw collapsed stacks) samples the server from here on.
    profiler = None
    if os.environ.get("BENCH_PROFILE_SERVER"):
        profiler = subprocess.Popen([shutil.which("py-spy") or "py-spy", "record", "-r", "500", "--threads", "--format", "raw",
                                     "-o", os.environ["BENCH_PROFILE_SERVER"], "--pid", str(server.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workflow_id = fixtures["workflows"][workflow_name(a.latency_ms, a.stream)]
    create_url = f"{base}/api/workflows/{workflow_id}/runs/"
    # As behind the TLS-terminating proxy production expects (else SECURE_SSL_REDIRECT answers 301).
    auth = {"Authorization": f"Token {fixtures['token']}", "X-Forwarded-Proto": "https"}
    ws_headers = {"Origin": base, "Cookie": f"sessionid={fixtures['sessionid']}"}
    final = {"succeeded", "failed", "cancelled"}

    async def prepare(topic: str) -> int:
        async with session.post(create_url, json={"inputs": {"topic": topic}}, headers=auth) as response:
            body = await response.json()
            if response.status != 201:
                raise RuntimeError(f"POST {create_url}: HTTP {response.status} {body}")
            return body["id"]

    class Watcher:
        """One WebSocket on ws/watch/, reused chain after chain: subscribe to the run, wait for run.completed."""

        def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
            self.ws = ws
            self.waiting: asyncio.Future[str | None] | None = None
            self.run_id = 0
            self.stated = False
            self.last_output: str | None = None
            self.reader = asyncio.create_task(self.read_events())

        def settle(self, output: str | None = None, error: str = "") -> None:
            if self.waiting is not None and not self.waiting.done():
                if error:
                    self.waiting.set_exception(RuntimeError(error))
                else:
                    self.waiting.set_result(output)

        async def read_events(self) -> None:
            """Only events of the run being waited for count, and only after its state."""
            async for message in self.ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                event = json.loads(message.data)
                kind = event["type"]
                if event.get("run_id") != self.run_id:
                    continue
                if kind == "error":
                    self.settle(error=f"run {self.run_id}: {event['error']}")
                elif kind == "run.state":
                    self.stated = True
                    run = event["run"]
                    done = [r for r in run["responses"] if r["index"] == len(STEPS) - 1]
                    self.last_output = done[0]["output"] if done else None
                    if run["status"] in final:
                        self.settle(run["output"], "" if run["status"] == "succeeded"
                                    else f"run {self.run_id} ended {run['status']}: {run['error']}")
                elif not self.stated:
                    continue  # queued before the subscription's state (the previous run's unsubscribe)
                elif kind == "step.completed" and event["index"] == len(STEPS) - 1:
                    self.last_output = event["output"]
                elif kind == "run.completed":
                    self.settle(self.last_output)
                elif kind in ("run.failed", "run.cancelled"):
                    self.settle(error=f"run {self.run_id}: {kind} {event.get('error', '')}")
            self.settle(error=f"run {self.run_id}: the WebSocket closed before run.completed (code {self.ws.close_code})")

        async def watch(self, run_id: int) -> str | None:
            self.run_id, self.stated, self.last_output = run_id, False, None
            self.waiting = asyncio.get_running_loop().create_future()
            await self.ws.send_json({"type": "subscribe", "run_id": run_id})
            try:
                return await self.waiting
            finally:
                await self.ws.send_json({"type": "unsubscribe", "run_id": run_id})

    # A client running N chains at once holds N sockets (a consumer handles one message at a time).
    idle: list[Watcher] = []
    watchers: list[Watcher] = []

    async def execute(run_id: int) -> str | None:
        if idle:
            watcher = idle.pop()
        else:
            watcher = Watcher(await session.ws_connect(f"ws://127.0.0.1:{port}/ws/watch/", headers=ws_headers))
            watchers.append(watcher)
        try:
            return await watcher.watch(run_id)
        finally:
            idle.append(watcher)

    async def aclose() -> None:
        for watcher in watchers:
            await watcher.ws.close()
            watcher.reader.cancel()
        await session.close()
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            profiler.wait(30)
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        log.close()

    def stats() -> dict[str, Any]:
        text = Path(log_path).read_text(errors="replace")
        return {"db_locked": text.count(LOCKED), "server_tracebacks": text.count("Traceback"),
                "server_log_tail": text[-2000:] if "Traceback" in text else ""}

    impl = Impl(prepare=prepare, execute=execute, outputs=_as_is, aclose=aclose, stats=stats, rss_pid=server.pid)
    impl.extra["server_pid"] = server.pid
    return impl


IMPLS: dict[str, Callable[[argparse.Namespace], Awaitable[Impl]]] = {
    "raw": make_raw, "raw-aiohttp": make_raw_aiohttp, "runner": make_runner, "api": make_api}


# --- one phase ----------------------------------------------------------------------------------
async def run_phase(a: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    impl = await IMPLS[a.impl](a)
    setup_s = time.perf_counter() - started
    latency = a.latency_ms / 1000
    out: dict[str, Any] = {"impl": a.impl, "phase": a.phase, "latency_ms": a.latency_ms, "stream": a.stream,
                           "setup_s": round(setup_s, 3)}
    done: list[tuple[str, Any]] = []  # (topic, handle), verified after the timed part
    errors: list[BaseException] = []

    t = time.perf_counter()
    done.append(("warm-0", await impl.run_chain("warm-0")))
    out["first_chain_ms"] = round((time.perf_counter() - t) * 1000, 2)
    out["cold_start_ms"] = round(setup_s * 1000 + out["first_chain_ms"], 1)  # import + setup + 1st chain
    for i in range(1, a.warmup if a.phase != "scale" else 1):
        done.append((f"warm-{i}", await impl.run_chain(f"warm-{i}")))
    out["rss_before_kb"] = proc_status_kb("VmRSS", impl.rss_pid)

    if a.phase == "seq":
        walls = []
        for i in range(a.chains):
            topic = f"topic number {i}"
            t = time.perf_counter()
            done.append((topic, await impl.run_chain(topic)))
            walls.append(time.perf_counter() - t)
        median = statistics.median(walls)
        out.update(chains=a.chains, chain_ms_median=round(median * 1000, 3), chain_ms_p90=round(pct(walls, 0.9) * 1000, 3),
                   overhead_ms_per_step=round((median - len(STEPS) * latency) / len(STEPS) * 1000, 3))
    elif a.phase == "thr":
        semaphore = asyncio.Semaphore(a.concurrency)
        chain_walls: list[float] = []

        async def one(i: int) -> None:
            async with semaphore:
                topic = f"topic number {i}"
                t = time.perf_counter()
                handle = await impl.run_chain(topic)
                chain_walls.append(time.perf_counter() - t)
                done.append((topic, handle))

        t = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(a.chains)), return_exceptions=True)
        wall = time.perf_counter() - t
        errors += [r for r in results if isinstance(r, BaseException)]
        ideal = a.chains / a.concurrency * len(STEPS) * latency
        out.update(chains=a.chains, concurrency=a.concurrency, wall_s=round(wall, 3),
                   chains_per_s=round(a.chains / wall, 1), ideal_s=round(ideal, 3), ratio_to_ideal=round(wall / ideal, 3),
                   chain_ms_p50=round(pct(chain_walls, 0.5) * 1000, 1) if chain_walls else None,
                   chain_ms_p95=round(pct(chain_walls, 0.95) * 1000, 1) if chain_walls else None)
    else:  # scale: start every run, then execute them all at once
        topics = [f"scale {i}" for i in range(a.chains)]
        t = time.perf_counter()
        handles = [await impl.prepare(topic) for topic in topics]
        prepare_s = time.perf_counter() - t
        t = time.perf_counter()
        results = await asyncio.gather(*(impl.execute(h) for h in handles), return_exceptions=True)
        wall = time.perf_counter() - t
        errors += [r for r in results if isinstance(r, BaseException)]
        done += [(topic, r) for topic, r in zip(topics, results, strict=True) if not isinstance(r, BaseException)]
        ideal = len(STEPS) * latency
        out.update(chains=a.chains, concurrency=a.chains, prepare_s=round(prepare_s, 3), wall_s=round(wall, 3),
                   ideal_s=round(ideal, 3), ratio_to_ideal=round(wall / ideal, 3))
    out["peak_rss_kb"] = proc_status_kb("VmHWM", impl.rss_pid)

    outputs = await impl.outputs([handle for _, handle in done])
    mismatches = 0
    expected: dict[str, str] = {}
    for (topic, _), got in zip(done, outputs, strict=True):
        want = expected.setdefault(topic, expected_output(topic, a.tokens))
        if got != want:
            mismatches += 1
            if mismatches == 1:
                print(f"MISMATCH {a.impl} {topic!r}: got {got!r} want {want!r}", file=sys.stderr)
    if errors:
        print(f"{len(errors)} chain errors in {a.impl}/{a.phase}, first: {errors[0]!r}", file=sys.stderr)
    await impl.aclose()
    out.update(mismatches=mismatches, errors=len(errors), verified=len(done),
               errors_db_locked=sum(LOCKED in str(e) for e in errors), client_peak_rss_kb=proc_status_kb("VmHWM"))
    out.update(impl.stats())
    out["db_locked"] = out.get("db_locked", 0) + out["errors_db_locked"]
    if not os.environ.get("BENCH_KEEP"):
        for workdir in _workdirs:
            shutil.rmtree(workdir, ignore_errors=True)
    return out


# --- the template database ----------------------------------------------------------------------
def setup_db(a: argparse.Namespace) -> None:
    """Migrate a fresh SQLite file and create what runner and api need; writes <db>.json beside it.

    One endpoint per fake server (max_concurrency 10000, so the endpoint's limit never queues the
    benchmark), and per endpoint a 3-step chain workflow with JSON answers and one with streaming.
    Payloads set nothing but the model, like raw's requests.
    """
    os.environ.update(_django_env(a.db))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from rest_framework.authtoken.models import Token

    from blocks.models import Block
    from llm.models import Endpoint
    from payloads.models import Payload, PayloadBlock
    from workflows.models import Step, Workflow

    call_command("migrate", verbosity=0, interactive=False)
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-password")
    client = Client()
    client.force_login(user)
    fixtures: dict[str, Any] = {"token": Token.objects.create(user=user).key,
                                "sessionid": client.cookies["sessionid"].value, "workflows": {}}
    keys = ["outline", "paragraph", "summary"]
    blocks = [Block.objects.create(name=f"bench-{key}", content=prompt) for key, prompt in zip(keys, STEPS, strict=True)]
    for spec in a.server:
        latency_ms, base_url = spec.split("=", 1)
        endpoint = Endpoint(name=f"bench-{latency_ms}", base_url=base_url, default_model=MODEL, max_concurrency=10000)
        endpoint.set_api_key(API_KEY)
        endpoint.full_clean()
        endpoint.save()
        for stream in (False, True):
            name = workflow_name(float(latency_ms), stream)
            workflow = Workflow.objects.create(name=name, inputs=[{"name": "topic"}])
            for position, (key, block) in enumerate(zip(keys, blocks, strict=True)):
                payload = Payload.objects.create(name=f"{name}-{key}", endpoint=endpoint, model=MODEL, stream=stream)
                PayloadBlock.objects.create(payload=payload, block=block, role="user", position=0)
                Step.objects.create(workflow=workflow, payload=payload, output_key=key, position=position)
            fixtures["workflows"][name] = workflow.pk
    from django.apps import apps

    if apps.is_installed("prices"):  # issue 19: the model has a price, so every step computes its cost
        import datetime
        from decimal import Decimal

        from prices.models import Price
        Price.objects.create(model=MODEL, effective_from=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC),
                             input_per_million=Decimal("0.15"), output_per_million=Decimal("0.60"))
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file: copies need no -wal
    connection.close()
    Path(a.db).with_suffix(".json").write_text(json.dumps(fixtures))


def main() -> None:
    parser = argparse.ArgumentParser(description="one benchmark phase in this process")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("--impl", choices=sorted(IMPLS), required=True)
    run.add_argument("--phase", choices=["seq", "thr", "scale"], required=True)
    run.add_argument("--base-url", required=True)
    run.add_argument("--latency-ms", type=float, default=0.0)
    run.add_argument("--tokens", type=int, default=20)
    run.add_argument("--chains", type=int, default=50)
    run.add_argument("--concurrency", type=int, default=100)
    run.add_argument("--warmup", type=int, default=5)
    run.add_argument("--stream", action="store_true")
    run.add_argument("--db", help="the migrated template database (runner, api)")
    run.add_argument("--server-cpu", type=int, default=None, help="api: pin the daphne server to this CPU")
    setup = sub.add_parser("setup-db")
    setup.add_argument("--db", required=True)
    setup.add_argument("--server", action="append", default=[], metavar="LATENCY_MS=BASE_URL")
    a = parser.parse_args()
    if a.cmd == "setup-db":
        setup_db(a)
        return
    try:
        print(json.dumps(asyncio.run(run_phase(a))), flush=True)
    finally:
        for server in _servers:
            if server.poll() is None:
                server.kill()
                server.wait(10)


if __name__ == "__main__":
    main()
