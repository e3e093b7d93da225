"""`make bench-distributed` (and the last phase of `make bench`): distributed mode, measured.

    .venv/bin/python bench/distributed.py                      # the recorded run (about 2-3 min)
    .venv/bin/python bench/distributed.py --runs 100 --kills 2 # a quick look

Starts a throwaway PostgreSQL cluster and Redis server (tests/scaleout/servers.py, which installs
the Debian packages when missing), the project's fake OpenAI server (tests/fake_llm.py; 100 ms,
20 tokens a reply) and real `manage.py procrastinate worker -c N` processes, then measures:

- throughput: one batch of runs of the 3-step chain (tests/factories.make_chain, as bench/run.py)
  with 1 and then 2 worker processes; wall time from the batch's commit (the moment its jobs
  start being queued) to the last run's `finished_at`; every run must succeed with exactly one
  response per step and the expected output, or the benchmark fails;
- CPU per step: utime+stime from /proc/<pid>/stat of the worker processes, of PostgreSQL (the
  postmaster, its live backends and the backends it reaped), of Redis and of the fake LLM, taken
  before and after the batch, divided by the steps done;
- recovery: `kill -9` of a worker while it holds steps (500 ms replies so kills land mid-step),
  then the time until each of its runs resumes on the surviving worker: the run's lease taken by
  another owner, its step committed, or the run finished, whichever is seen first.

Prints a markdown table and writes bench/latest-distributed.json (a run with the defaults) or --out.
Workers run with production settings (DEBUG off, LOG_LEVEL INFO), as a deployment would.
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

TOKENS = 20
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- CPU time from /proc --------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces): [0] is the state."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    fields = _stat_fields(pid)
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime: children that exited and were waited for
    return ticks / CLOCK_TICKS


def process_tree_cpu_seconds(root_pid: int) -> float:
    """A server and its children, the exited ones included (PostgreSQL forks a backend per connection)."""
    total = cpu_seconds(root_pid, reaped_children=True)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat_fields(int(entry.name))
        except (OSError, ValueError):
            continue  # gone meanwhile
        if int(fields[1]) == root_pid:
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def machine(pg_bin: Path) -> dict[str, Any]:
    cpu_model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("procrastinate", "Django", "psycopg", "channels-redis", "openai"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            pass
    pg_version = subprocess.run([str(pg_bin / "postgres"), "--version"], capture_output=True, text=True).stdout.strip()
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    return {"git_commit": os.environ.get("BENCH_GIT_COMMIT") or commit.strip(), "nproc": os.cpu_count(),
            "cpu_model": cpu_model, "python": platform.python_version(), "platform": platform.platform(),
            "loadavg_start": os.getloadavg(), "versions": versions, "postgresql": pg_version, "redis": redis_version}


# --- the benchmark ---------------------------------------------------------------------------------
class Bench:
    def __init__(self, args: argparse.Namespace, servers: Any, fake_llm: Any, log_dir: Path) -> None:
        from tests.factories import make_chain, make_endpoint

        self.args = args
        self.servers = servers
        self.fake_llm = fake_llm
        self.log_dir = log_dir
        self.workers: list[Any] = []
        self.workflow = make_chain(make_endpoint(fake_llm.base_url), name="bench-chain")
        self.batch_number = 0
        self.last_queue_s = 0.0
        self.workers_started = 0

    # workers
    def start_worker(self, concurrency: int) -> Any:
        from tests.scaleout.conftest import Worker, process_env

        self.workers_started += 1
        worker = Worker(self.log_dir / f"worker-{self.workers_started}.log", concurrency, process_env())
        self.workers.append(worker)
        worker.wait_for_log("Starting worker on", timeout=60)
        return worker

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def postmaster_pid(self) -> int:
        return int((self.servers.pg_data / "postmaster.pid").read_text().split()[0])

    def cpu_snapshot(self, workers: list[Any]) -> dict[str, float]:
        assert self.servers.redis is not None
        return {"workers": sum(cpu_seconds(w.pid) for w in workers),
                "postgresql": process_tree_cpu_seconds(self.postmaster_pid()),
                "redis": cpu_seconds(self.servers.redis.pid),
                "fake_llm": cpu_seconds(self.fake_llm.process.pid),
                "queuing_process": sum(os.times()[:2])}

    # runs
    def queue_batch(self, count: int) -> tuple[list[int], list[str], float]:
        """Create `count` runs in one transaction; their jobs are queued as it commits (on_commit)."""
        from django.db import transaction

        from runs.services import run_start

        self.batch_number += 1
        topics = [f"b{self.batch_number}-{i}" for i in range(count)]
        with transaction.atomic():
            run_ids = [run_start(workflow=self.workflow, inputs={"topic": topic}, user=None).pk for topic in topics]
            committed_at = time.time()  # the commit and the deferring of every job come after this
        self.last_queue_s = time.time() - committed_at
        return run_ids, topics, committed_at

    def wait_until_final(self, run_ids: list[int], timeout: float) -> None:
        from runs.models import FINAL_STATUSES, Run

        deadline = time.monotonic() + timeout
        while Run.objects.filter(pk__in=run_ids).exclude(status__in=FINAL_STATUSES).exists():
            if time.monotonic() > deadline:
                raise BenchFailure(f"{len(run_ids)} runs still not finished after {timeout:.0f} s")
            time.sleep(0.05)

    def check_batch(self, run_ids: list[int], topics: list[str]) -> float:
        """Every run succeeded with responses 0, 1, 2 and the expected text; returns the last finished_at."""
        from runs.models import Response, Run
        from tests.factories import expected_chain_output

        runs = {pk: (status, output, finished) for pk, status, output, finished in
                Run.objects.filter(pk__in=run_ids).values_list("pk", "status", "output", "finished_at")}
        steps: dict[int, list[int]] = {pk: [] for pk in run_ids}
        for run_id, index in (Response.objects.filter(run_id__in=run_ids, status="succeeded")
                              .order_by("index").values_list("run_id", "index")):
            steps[run_id].append(index)
        problems = []
        for pk, topic in zip(run_ids, topics, strict=True):
            status, output, _ = runs[pk]
            if status != "succeeded":
                problems.append(f"run {pk}: {status}")
            elif steps[pk] != [0, 1, 2]:
                problems.append(f"run {pk}: responses {steps[pk]}")
            elif output != expected_chain_output(topic, TOKENS):
                problems.append(f"run {pk}: unexpected output")
        if problems:
            raise BenchFailure(f"{len(problems)} of {len(run_ids)} runs wrong: " + "; ".join(problems[:5]))
        return max(finished.timestamp() for _, _, finished in runs.values())

    def vacuum_analyze(self) -> None:
        # Planner statistics taken on the near-empty table of a fresh cluster make every job fetch
        # ~100x slower (procrastinate #1242), and dead rows of earlier batches make it scan more: a
        # deployment has autovacuum and re-analyses (runs.engine.tasks); each batch starts from that state.
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE procrastinate_jobs, runs_run, runs_response")

    # phases
    def throughput(self, worker_count: int) -> dict[str, Any]:
        """`--reps` batches on the same workers after a warm-up; the figures are the medians."""
        a = self.args
        self.fake_llm.control(latency_ms=a.latency_ms, tokens=TOKENS)
        workers = [self.start_worker(a.concurrency) for _ in range(worker_count)]
        try:
            # Warm-up (imports, connections, the jobs table's statistics): not measured.
            run_ids, topics, _ = self.queue_batch(a.warmup_runs)
            self.wait_until_final(run_ids, timeout=120)
            self.check_batch(run_ids, topics)
            reps = [self.measured_batch(workers) for _ in range(a.reps)]
        finally:
            self.stop_workers()

        def median(key: str, sub: str | None = None) -> float:
            return round(statistics.median(r[key][sub] if sub else r[key] for r in reps), 2)

        wall = statistics.median(r["wall_s"] for r in reps)
        return {"workers": worker_count, "concurrency_per_worker": a.concurrency, "runs": a.runs,
                "steps": 3 * a.runs, "latency_ms": a.latency_ms, "reps": a.reps, "wall_s": round(wall, 3),
                "ideal_wall_s": -(-a.runs // (a.concurrency * worker_count)) * 3 * a.latency_ms / 1000,
                "steps_per_s": round(3 * a.runs / wall, 1),
                "commit_and_queue_jobs_s": median("commit_and_queue_jobs_s"),
                "cpu_ms_per_step": {name: median("cpu_ms_per_step", name) for name in reps[0]["cpu_ms_per_step"]},
                "run_start_cpu_ms_per_run": median("run_start_cpu_ms_per_run"), "per_rep": reps}

    def measured_batch(self, workers: list[Any]) -> dict[str, Any]:
        a = self.args
        self.vacuum_analyze()
        time.sleep(0.5)  # let the workers go idle
        self.fake_llm.reset()
        self.fake_llm.control(latency_ms=a.latency_ms, tokens=TOKENS)
        before = self.cpu_snapshot(workers)
        run_ids, topics, committed_at = self.queue_batch(a.runs)
        queued = self.cpu_snapshot(workers)
        queue_s = self.last_queue_s
        self.wait_until_final(run_ids, timeout=300)
        after = self.cpu_snapshot(workers)
        last_finished = self.check_batch(run_ids, topics)
        steps = 3 * a.runs
        wall = last_finished - committed_at
        return {"wall_s": round(wall, 3), "commit_and_queue_jobs_s": round(queue_s, 3),
                "cpu_ms_per_step": {name: round(1000 * (after[name] - before[name]) / steps, 2) for name in after
                                    if name != "queuing_process"},
                "run_start_cpu_ms_per_run": round(1000 * (queued["queuing_process"] - before["queuing_process"])
                                                  / a.runs, 2),
                "llm_calls": self.fake_llm.stats()["chat_requests"]}

    def recovery(self) -> dict[str, Any]:
        from runs.models import FINAL_STATUSES, Response, Run

        a = self.args
        rng = random.Random(7)
        self.fake_llm.reset()
        self.fake_llm.control(latency_ms=a.recovery_latency_ms, tokens=TOKENS)
        workers = [self.start_worker(a.recovery_concurrency) for _ in range(2)]
        kills: list[dict[str, Any]] = []
        try:
            attempts = 0
            while len(kills) < a.kills and attempts < 3 * a.kills:
                attempts += 1
                run_ids, topics, _ = self.queue_batch(a.recovery_runs)
                victim = workers[0]
                mark = f":{victim.pid}:"
                deadline = time.monotonic() + 30
                while Run.objects.filter(pk__in=run_ids, lease_owner__contains=mark).count() < 3:
                    if time.monotonic() > deadline:
                        raise BenchFailure(f"worker {victim.pid} never held 3 steps of the batch")
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.05, a.recovery_latency_ms / 1000 * 0.8))  # somewhere mid-step
                victim.signal(signal.SIGKILL)
                killed_at = time.time()
                victim.process.wait(10)
                workers.remove(victim)
                # The victim is dead: the leases that still name it are exactly the steps it held.
                held = {pk: (step, owner) for pk, step, owner in Run.objects.filter(
                    pk__in=run_ids, lease_owner__contains=mark).values_list("pk", "next_step", "lease_owner")}
                if not held:  # its steps all committed between the look and the kill: try again
                    print("  kill -9 landed between steps; not counted", flush=True)
                    self.wait_until_final(run_ids, timeout=120)
                    self.check_batch(run_ids, topics)
                    workers.append(self.start_worker(a.recovery_concurrency))
                    continue
                resumed: dict[int, float] = {}
                deadline = time.monotonic() + 60
                while len(resumed) < len(held):
                    if time.monotonic() > deadline:
                        raise BenchFailure(f"runs of the killed worker not resumed within 60 s: {sorted(held)}")
                    now = time.time()
                    for pk, step, owner, status in Run.objects.filter(pk__in=[p for p in held if p not in resumed]) \
                            .values_list("pk", "next_step", "lease_owner", "status"):
                        held_step, _ = held[pk]
                        if (owner and mark not in owner) or step > held_step or status in FINAL_STATUSES:
                            resumed[pk] = now
                    time.sleep(0.05)
                # A commit may have come before the poll that saw it: its own time is more exact.
                for run_id, index, created in Response.objects.filter(run_id__in=list(held)) \
                        .values_list("run_id", "index", "created_at"):
                    if index == held[run_id][0] and killed_at < created.timestamp() < resumed[run_id]:
                        resumed[run_id] = created.timestamp()
                self.wait_until_final(run_ids, timeout=120)
                self.check_batch(run_ids, topics)
                delays = sorted(resumed[pk] - killed_at for pk in held)
                kills.append({"held_steps": len(held), "first_resumed_s": round(delays[0], 2),
                              "all_resumed_s": round(delays[-1], 2), "resume_s": [round(d, 2) for d in delays]})
                print(f"  kill -9 of a worker holding {len(held)} steps: resumed after "
                      f"{delays[0]:.2f}-{delays[-1]:.2f} s", flush=True)
                workers.append(self.start_worker(a.recovery_concurrency))  # the supervisor restarts it
        finally:
            self.stop_workers()
        every = [d for kill in kills for d in kill["resume_s"]]
        last = [kill["all_resumed_s"] for kill in kills]
        return {"kills": len(kills), "runs_per_kill": a.recovery_runs, "latency_ms": a.recovery_latency_ms,
                "concurrency_per_worker": a.recovery_concurrency, "runs_resumed": len(every),
                "resume_median_s": round(statistics.median(every), 2), "resume_max_s": round(max(every), 2),
                "all_resumed_median_s": round(statistics.median(last), 2), "per_kill": kills}


class BenchFailure(Exception):
    pass


def serve_events_like_a_web_node() -> None:
    """Give run_start's events a running loop, as daphne does on a web node.

    Without one, every event is sent through async_to_sync on a new loop (a new Redis connection
    each time), a cost a web node never pays and that would slow the queuing of a batch.
    """
    import asyncio
    import threading

    from runs.engine import events

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="events-loop", daemon=True).start()
    events.use_loop(loop)


# --- report ---------------------------------------------------------------------------------------
def render(result: dict[str, Any]) -> str:
    one, two = result["throughput"]
    rows = [
        ("steps/s", f"{one['steps_per_s']:.0f}", f"{two['steps_per_s']:.0f}"),
        (f"wall for {one['runs']} runs (s)", f"{one['wall_s']:.2f} (ideal {one['ideal_wall_s']:.2f})",
         f"{two['wall_s']:.2f} (ideal {two['ideal_wall_s']:.2f})"),
    ]
    rows.append(("commit the batch and queue its jobs (s)", f"{one['commit_and_queue_jobs_s']:.2f}",
                 f"{two['commit_and_queue_jobs_s']:.2f}"))
    labels = {"workers": "CPU per step: worker processes (ms)", "postgresql": "CPU per step: PostgreSQL (ms)",
              "redis": "CPU per step: Redis (ms)", "fake_llm": "CPU per step: fake LLM server (ms)"}
    for key, label in labels.items():
        rows.append((label, f"{one['cpu_ms_per_step'][key]:.2f}", f"{two['cpu_ms_per_step'][key]:.2f}"))
    rows.append(("run_start CPU per run, queuing process (ms)", f"{one['run_start_cpu_ms_per_run']:.2f}",
                 f"{two['run_start_cpu_ms_per_run']:.2f}"))
    lines = [f"| figure | 1 worker (-c {one['concurrency_per_worker']}) | 2 workers (-c {two['concurrency_per_worker']} each) |",
             "|---|---:|---:|", *(f"| {a} | {b} | {c} |" for a, b, c in rows)]
    r = result["recovery"]
    lines.append("")
    lines.append(f"medians of {one['reps']} batches of {one['runs']} runs x 3 steps, {one['latency_ms']} ms replies "
                 f"of {TOKENS} tokens; load average {result['machine']['loadavg_start'][0]:.2f} at start, "
                 f"{result['machine']['loadavg_end'][0]:.2f} at end")
    lines.append(f"kill -9 to resumed on another worker: median {r['resume_median_s']:.2f} s, max {r['resume_max_s']:.2f} s "
                 f"({r['runs_resumed']} runs over {r['kills']} kills; every held run resumed after a median "
                 f"{r['all_resumed_median_s']:.2f} s)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300, help="runs per throughput batch (3 steps each)")
    parser.add_argument("--concurrency", type=int, default=100, help="-c of each worker in the throughput phase")
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--warmup-runs", type=int, default=100)
    parser.add_argument("--reps", type=int, default=5, help="measured batches per worker count (medians)")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--recovery-runs", type=int, default=30, help="runs queued before each kill")
    parser.add_argument("--recovery-concurrency", type=int, default=10)
    parser.add_argument("--recovery-latency-ms", type=int, default=500)
    parser.add_argument("--out", help="JSON file (default: bench/latest-distributed.json for a run with the "
                                      "defaults, else bench/results/distributed-<time>.json)")
    a = parser.parse_args()
    started = time.monotonic()

    from tests.scaleout import servers as scaleout_servers

    scaleout_servers.ensure_installed()
    servers = scaleout_servers.Servers()
    fake_llm = None
    log_dir = Path(tempfile.mkdtemp(prefix="orch-bench-distributed-"))
    try:
        servers.start()
        # Production settings, distributed mode; the workers and the fake server inherit them.
        os.environ.update({
            "DJANGO_SETTINGS_MODULE": "orchestrator.settings", "DATABASE_URL": servers.database_url,
            "REDIS_URL": servers.redis_url, "RUNS_BACKEND": "procrastinate", "DEBUG": "0",
            "SECRET_KEY": "bench-secret-key-not-for-production", "LOG_LEVEL": "INFO", "METRICS_ALLOWED_NETWORKS": "127.0.0.0/8",
            "LLM_ENDPOINT_ALLOW_LOOPBACK": "1",  # the fake server is on loopback
        })
        import django

        django.setup()
        # This process only queues runs and reads results: one log line per deferred job is noise.
        logging.getLogger("procrastinate").setLevel(logging.WARNING)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        serve_events_like_a_web_node()
        from tests.fake_llm import FakeLLM

        fake_llm = FakeLLM("--latency-ms", str(a.latency_ms), "--tokens", str(TOKENS))
        bench = Bench(a, servers, fake_llm, log_dir)
        result: dict[str, Any] = {"kind": "distributed", "machine": machine(servers.pg_bin),
                                  "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                                  "args": vars(a), "throughput": []}
        for worker_count in (1, 2):
            print(f"throughput: {a.runs} runs, {worker_count} worker(s) at -c {a.concurrency} ...", flush=True)
            result["throughput"].append(bench.throughput(worker_count))
        print(f"recovery: {a.kills} x kill -9 ...", flush=True)
        result["recovery"] = bench.recovery()
        result["duration_s"] = round(time.monotonic() - started, 1)
        result["machine"]["loadavg_end"] = os.getloadavg()
    except BenchFailure as failure:
        print(f"FAILED: {failure} (worker logs in {log_dir})", file=sys.stderr)
        return 1
    finally:
        if fake_llm is not None:
            fake_llm.stop()
        servers.stop()

    print()
    print(render(result))
    defaults = all(getattr(a, key) == parser.get_default(key) for key in vars(a) if key != "out")
    if a.out:
        out = Path(a.out)
    elif defaults:
        out = HERE / "latest-distributed.json"
    else:
        (HERE / "results").mkdir(exist_ok=True)
        out = HERE / "results" / f"distributed-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nrows: {out}; {result['duration_s']} s")
    shutil.rmtree(log_dir, ignore_errors=True)  # kept when the run fails
    return 0


if __name__ == "__main__":
    sys.exit(main())
