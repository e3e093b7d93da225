"""`make bench-experiments-distributed` (and the last phase of `make bench-experiments`): issue 20's
distributed target. An experiment of 10,000 one-step cells (concurrency 100, fake server at 100 ms)
driven by 2 `procrastinate worker` processes on PostgreSQL; at about 40 % of the cells done the worker
that runs the experiment's driver job is killed with SIGKILL (its runs and the driver must come back
on the other one). Then it counts: succeeded cells, duplicates (cells started twice, runs with more
than one Response, runs beyond one per cell), and the LLM calls that reached the fake server after
the kill for cells whose Response was committed before it (the fake server logs every request's
arrival time and prompt).

    .venv/bin/python bench/experiments_distributed.py                 # 10,000 cells (about 1-2 min)
    .venv/bin/python bench/experiments_distributed.py --cells 1000    # a quick look

The servers, workers and fake server are those of bench/distributed.py and tests/scaleout/.
Writes bench/results/experiments-distributed-<time>.json (with the defaults also
bench/latest-experiments-distributed.json); exit 1 unless every cell succeeded once and no committed
call was repeated.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


def measure(a: argparse.Namespace, fake_llm: Any, log_dir: Path) -> dict[str, Any]:
    from django.db.models import Count

    from experiments import tasks
    from experiments.models import Cell, Experiment
    from runs.models import Response, Run
    from tests.experiments.conftest import make_dataset_version, make_two_releases, start_experiment
    from tests.scaleout.conftest import Worker, process_env

    workflow, first, _ = make_two_releases(fake_llm.base_url, max_concurrency=10000)
    version = make_dataset_version(a.cells)
    workers = [Worker(log_dir / f"worker-{n}.log", a.worker_concurrency, process_env()) for n in range(2)]
    for worker in workers:
        worker.wait_for_log("Starting worker on", timeout=60)
    fake_llm.reset()
    fake_llm.control(latency_ms=a.latency_ms, tokens=20, log_requests=True)
    try:
        started = time.time()
        experiment = start_experiment(workflow, version, [first], concurrency=a.concurrency)
        deadline = time.monotonic() + a.timeout

        def done() -> int:
            return Cell.objects.filter(experiment=experiment, status="succeeded").count()

        driver = None
        while driver is None or done() < a.kill_at * a.cells:
            driver = driver or next((w for w in workers if f"Starting job {tasks.DRIVE_TASK}" in w.log()), None)
            if time.monotonic() > deadline:
                raise BenchFailure("the experiment never reached the kill point")
            time.sleep(0.05)
        killed_at = time.time()
        driver.signal(signal.SIGKILL)
        driver.process.wait(10)
        done_at_kill = done()
        while not Experiment.objects.get(pk=experiment.pk).is_finished:
            if time.monotonic() > deadline:
                raise BenchFailure(f"experiment not finished after {a.timeout} s")
            time.sleep(0.2)
        experiment = Experiment.objects.get(pk=experiment.pk)
    finally:
        for worker in workers:
            worker.stop()
    cells = list(Cell.objects.filter(experiment=experiment).values_list("status", "tries", "run_id"))
    run_ids = [run_id for _, _, run_id in cells]
    prompts = {pk: f"Answer briefly: {inputs['topic']}" for pk, inputs in
               Run.objects.filter(pk__in=run_ids).values_list("pk", "inputs")}
    responses = Counter(dict(Response.objects.filter(run_id__in=run_ids).values("run_id").annotate(n=Count("id"))
                             .values_list("run_id", "n")))
    committed = set(Response.objects.filter(run_id__in=run_ids, created_at__lt=datetime.datetime.fromtimestamp(
        killed_at, tz=datetime.UTC)).values_list("run_id", flat=True))
    committed_prompts = {prompts[pk] for pk in committed}
    logged = fake_llm.requests_logged()
    return {
        "cells": a.cells, "concurrency": a.concurrency, "latency_ms": a.latency_ms,
        "worker_concurrency": a.worker_concurrency, "status": experiment.status,
        "wall_s": round(experiment.finished_at.timestamp() - started, 2),
        "kill_after_s": round(killed_at - started, 2), "succeeded_at_kill": done_at_kill,
        "committed_before_kill": len(committed),
        "succeeded_cells": Counter(status for status, _, _ in cells)["succeeded"],
        "cells_started_twice": sum(tries != 1 for _, tries, _ in cells),
        "runs": Run.objects.count(), "runs_with_more_than_one_response": sum(n > 1 for n in responses.values()),
        "runs_without_response": len(run_ids) - len(responses),
        "llm_calls": len(logged),
        "llm_calls_after_kill": sum(at > killed_at for at, _ in logged),
        "llm_calls_after_kill_for_committed_cells": sum(at > killed_at and p in committed_prompts for at, p in logged),
    }


class BenchFailure(Exception):
    pass


def problems(r: dict[str, Any]) -> list[str]:
    found = []
    if r["succeeded_cells"] != r["cells"] or r["status"] != "finished":
        found.append(f"{r['succeeded_cells']} of {r['cells']} cells succeeded ({r['status']})")
    for key in ("cells_started_twice", "runs_with_more_than_one_response", "runs_without_response",
                "llm_calls_after_kill_for_committed_cells"):
        if r[key]:
            found.append(f"{key}: {r[key]}")
    if r["runs"] != r["cells"]:
        found.append(f"{r['runs']} runs for {r['cells']} cells")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--worker-concurrency", type=int, default=110, help="-c of each worker")
    parser.add_argument("--kill-at", type=float, default=0.4, help="share of cells succeeded at the kill")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--out")
    a = parser.parse_args()
    from tests.scaleout import servers as scaleout_servers

    scaleout_servers.ensure_installed()
    servers = scaleout_servers.Servers()
    fake_llm = None
    log_dir = Path(tempfile.mkdtemp(prefix="orch-bench-exp-distributed-"))
    started = time.monotonic()
    try:
        servers.start()
        os.environ.update({
            "DJANGO_SETTINGS_MODULE": "orchestrator.settings", "DATABASE_URL": servers.database_url,
            "REDIS_URL": servers.redis_url, "RUNS_BACKEND": "procrastinate", "DEBUG": "0",
            "SECRET_KEY": "bench-secret-key-not-for-production", "LOG_LEVEL": "INFO", "METRICS_ALLOWED_NETWORKS": "127.0.0.0/8",
            "LLM_ENDPOINT_ALLOW_LOOPBACK": "1",
        })
        import django

        django.setup()
        import logging

        logging.getLogger("procrastinate").setLevel(logging.WARNING)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from tests.fake_llm import FakeLLM

        fake_llm = FakeLLM("--latency-ms", str(a.latency_ms), "--tokens", "20")
        result = measure(a, fake_llm, log_dir)
    except BenchFailure as failure:
        print(f"FAILED: {failure} (worker logs in {log_dir})", file=sys.stderr)
        return 1
    finally:
        if fake_llm is not None:
            fake_llm.stop()
        servers.stop()
    result["duration_s"] = round(time.monotonic() - started, 1)
    result["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    result["loadavg_end"] = os.getloadavg()
    for key, value in result.items():
        print(f"{key}: {value}")
    (HERE / "results").mkdir(exist_ok=True)
    out = Path(a.out) if a.out else HERE / "results" / f"experiments-distributed-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    found = problems(result)
    defaults = all(getattr(a, k) == parser.get_default(k) for k in vars(a) if k != "out")
    if defaults and not found and not a.out:
        shutil.copyfile(out, HERE / "latest-experiments-distributed.json")
    print(f"rows: {out}")
    for problem in found:
        print(f"FAILED: {problem} (worker logs in {log_dir})", file=sys.stderr)
    if not found:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
