"""`make bench-experiments` (and a phase of `make bench`): issue 20's embedded targets, measured.

    .venv/bin/python bench/experiments.py                          # 10,000 cells, 100,000-row upload
    .venv/bin/python bench/experiments.py --cells 1000 --upload-rows 10000   # a quick look

In one run, against one fake server (bench/fake_server.py, 100 ms, 20 tokens a reply, pinned to cpu1):
- `raw-aiohttp`: the openai SDK on its aiohttp transport (bench/phase.py's client) making the
  cells' calls, one `chat.completions.create` each, at the experiment's concurrency;
- `experiment`: a real `daphne` process (embedded executor, production settings, on a copy of a
  migrated SQLite database in WAL mode, pinned to cpu0 like bench/run.py's `api`) drives an
  experiment made with `experiments.services.experiment_create` over a dataset version of that many
  rows in this phase's process: wall time from the create's commit to `finished` (and from the
  server's first cell to `finished`: the server finds an experiment made outside its process on its
  next sweep), the daphne process's peak RSS (VmHWM), errors; then `export_lines(experiment, "csv")`
  of the results in a fresh process: time, and its RSS sampled every chunk;
- `upload`: a CSV of 100,000 rows posted to `/api/datasets/<id>/import/` on a fresh daphne: the
  server's peak RSS.
Every cell's output and every raw call's reply is compared with `fakellm.server.reply_text`.
Prints the figures against issue 20's targets and writes bench/results/experiments-<time>.json
(a run with the defaults also bench/latest-experiments.json); exit 1 on any error or mismatch.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from phase import API_KEY, MODEL, _django_env, free_port, proc_status_kb  # noqa: E402

PROMPT = "Answer briefly: {{ topic }}"
CHILD_TIMEOUT_SECONDS = 1800


def prompt_of(topic: str) -> str:
    return PROMPT.replace("{{ topic }}", topic)


def topic_of(index: int) -> str:
    return f"case {index}"


# --- the template database ------------------------------------------------------------------------
def setup_db(a: argparse.Namespace) -> None:
    """Migrate; a user with a token, an endpoint, a one-step workflow with a release, a priced model,
    a dataset of `--cells` rows (column `topic`) and an empty dataset for the upload."""
    os.environ.update(_django_env(a.db))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from datasets.services import dataset_create, dataset_version_create
    from prices.models import Price
    from releases.services import release_cut
    from tests.factories import make_block, make_endpoint, make_payload, make_workflow

    call_command("migrate", verbosity=0, interactive=False)
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-password")
    endpoint = make_endpoint(a.base_url, name="bench", default_model=MODEL, api_key=API_KEY, max_concurrency=10000)
    payload = make_payload("bench-answer", endpoint, [("user", make_block("bench-answer", PROMPT))], model=MODEL)
    workflow = make_workflow("bench-experiment", [("answer", payload)])
    release, _ = release_cut(workflow=workflow)
    Price.objects.create(model=MODEL, effective_from=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC),
                         input_per_million="0.15", output_per_million="0.60")
    cases = ({"inputs": {"topic": topic_of(i)}, "expected": f"e{i}"} for i in range(a.cells))
    version, _ = dataset_version_create(dataset=dataset_create(name="bench-cases"), cases=cases)
    upload_to = dataset_create(name="bench-upload")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file: copies need no -wal
    connection.close()
    Path(a.db).with_suffix(".json").write_text(json.dumps({
        "token": Token.objects.create(user=user).key, "user_id": user.pk, "workflow_id": workflow.pk,
        "release_id": release.pk, "version_id": version.pk, "upload_dataset_id": upload_to.pk, "cells": a.cells}))


# --- helpers --------------------------------------------------------------------------------------
def db_copy(template: str) -> tuple[str, str]:
    workdir = tempfile.mkdtemp(prefix="orch-bench-exp-")
    db_path = os.path.join(workdir, "db.sqlite3")
    shutil.copyfile(template, db_path)
    return workdir, db_path


class Daphne:
    """The project's server on a database copy, embedded executor, production settings."""

    def __init__(self, db_path: str, cpu: int | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(os.path.dirname(db_path), "daphne.log")
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "orchestrator.asgi:application"],
            cwd=ROOT, env={**os.environ, **_django_env(db_path)}, stdout=self.log, stderr=subprocess.STDOUT)
        if cpu is not None:
            os.sched_setaffinity(self.process.pid, {cpu})
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/healthz", timeout=1).read()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"daphne did not start; see {self.log_path}") from None
                time.sleep(0.05)
        # BENCH_PROFILE_SERVER=<file>: py-spy (raw collapsed stacks) samples the server from here on.
        self.profiler = None
        if os.environ.get("BENCH_PROFILE_SERVER"):
            self.profiler = subprocess.Popen(
                [shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), "record", "-r", "250",
                 "--threads", "--gil", "--format", "raw", "-o", os.environ["BENCH_PROFILE_SERVER"],
                 "--pid", str(self.process.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kb(self, key: str) -> int:
        return proc_status_kb(key, self.process.pid)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def tracebacks(self) -> int:
        return Path(self.log_path).read_text(errors="replace").count("Traceback")

    def stop(self) -> None:
        if self.profiler is not None:
            self.profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            self.profiler.wait(30)
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.log.close()


# --- raw-aiohttp ----------------------------------------------------------------------------------
async def raw_aiohttp(a: argparse.Namespace) -> dict[str, Any]:
    from openai import AsyncOpenAI, DefaultAioHttpClient

    from fakellm.server import reply_text

    # bench/phase.py's make_raw_aiohttp: the transport llm/client.py uses.
    client = AsyncOpenAI(base_url=a.base_url, api_key=API_KEY, max_retries=2, http_client=DefaultAioHttpClient())
    semaphore = asyncio.Semaphore(a.concurrency)

    async def one(index: int) -> bool:
        async with semaphore:
            prompt = prompt_of(topic_of(index))
            response = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}])
            return response.choices[0].message.content == reply_text(prompt, a.tokens)

    await one(-1)  # warm-up: imports and the first connection, as the server is warm when a cell starts
    rss_before = proc_status_kb("VmRSS")
    cpu_before = time.process_time()
    started = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(a.cells)), return_exceptions=True)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    await client.close()
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        print(f"raw-aiohttp: {len(errors)} errors, first {errors[0]!r}", file=sys.stderr)
    return {"impl": "raw-aiohttp", "cells": a.cells, "wall_s": round(wall, 3), "errors": len(errors),
            "cpu_ms_per_cell": round(cpu * 1000 / a.cells, 3),
            "mismatches": sum(r is False for r in results), "rss_before_kb": rss_before,
            "peak_rss_kb": proc_status_kb("VmHWM")}


# --- the experiment in a real server --------------------------------------------------------------
def experiment(a: argparse.Namespace) -> dict[str, Any]:
    fixtures = json.loads(Path(a.db).with_suffix(".json").read_text())
    workdir, db_path = db_copy(a.db)
    os.environ.update(_django_env(db_path))
    import django

    django.setup()
    from datasets.models import DatasetVersion
    from experiments.models import Experiment
    from experiments.services import experiment_create
    from runs.models import Response, Run
    from workflows.models import Workflow

    server = Daphne(db_path, a.server_cpu)
    out: dict[str, Any] = {"impl": "experiment", "cells": fixtures["cells"], "concurrency": a.concurrency,
                           "server_rss_before_kb": server.kb("VmRSS")}
    try:
        cpu_before = server.cpu_seconds()
        created_at = time.time()
        made = experiment_create(name="bench", workflow=Workflow.objects.get(pk=fixtures["workflow_id"]),
                                 dataset_version=DatasetVersion.objects.get(pk=fixtures["version_id"]),
                                 variants=[{"release": fixtures["release_id"]}], mapping={"topic": "topic"},
                                 concurrency=a.concurrency)
        committed_at = time.time()
        rss_max = 0
        deadline = time.monotonic() + a.timeout
        while not Experiment.objects.filter(pk=made.pk, status__in=("finished", "cancelled", "budget")).exists():
            rss_max = max(rss_max, server.kb("VmRSS"))
            if time.monotonic() > deadline or server.process.poll() is not None:
                raise RuntimeError(f"experiment not finished after {a.timeout} s (server log {server.log_path})")
            time.sleep(0.05)
        out["server_cpu_ms_per_cell"] = round((server.cpu_seconds() - cpu_before) * 1000 / fixtures["cells"], 3)
        out["server_peak_rss_kb"] = server.kb("VmHWM")
        out["server_rss_max_sampled_kb"] = rss_max
        out["server_tracebacks"] = server.tracebacks()
    finally:
        server.stop()
    done = Experiment.objects.get(pk=made.pk)
    first_run = Run.objects.order_by("created_at").values_list("created_at", flat=True).first()
    out.update(create_s=round(committed_at - created_at, 3),
               wall_s=round(done.finished_at.timestamp() - committed_at, 3),
               drive_s=round(done.finished_at.timestamp() - first_run.timestamp(), 3) if first_run else None,
               status=done.status, succeeded=done.succeeded, failed=done.failed, cancelled=done.cancelled,
               skipped=done.skipped, ticks=done.ticks, runs=Run.objects.count(),
               responses=Response.objects.count(), mismatches=_mismatches(done))
    out["errors"] = (done.cell_count - done.succeeded) + abs(out["runs"] - done.cell_count) \
        + abs(out["responses"] - done.cell_count) + out["server_tracebacks"]
    out["export"] = _child(["export", "--db", db_path, "--experiment", str(done.pk)], a.server_cpu)
    if not os.environ.get("BENCH_KEEP"):
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def _mismatches(experiment: Any) -> int:
    from experiments.models import Cell
    from fakellm.server import reply_text

    wrong = 0
    for inputs, output in Cell.objects.filter(experiment=experiment).values_list("item__inputs", "run__output"):
        wrong += output != reply_text(prompt_of(inputs["topic"]), 20)
    return wrong


def export(a: argparse.Namespace) -> dict[str, Any]:
    """In a fresh process: the results as CSV, consumed as a response would send them."""
    os.environ.update(_django_env(a.db))
    import django

    django.setup()
    from experiments.export import export_lines
    from experiments.models import Experiment

    experiment = Experiment.objects.get(pk=a.experiment)
    rss_before = proc_status_kb("VmRSS")
    samples: list[int] = []
    size = lines = 0
    started = time.perf_counter()
    for chunk in export_lines(experiment, "csv"):
        size += len(chunk)
        lines += chunk.count(b"\n")
        samples.append(proc_status_kb("VmRSS"))
    wall = time.perf_counter() - started
    quarter = max(len(samples) // 4, 1)
    return {"export_s": round(wall, 3), "bytes": size, "lines": lines, "rss_before_kb": rss_before,
            "rss_max_kb": max(samples), "rss_first_quarter_max_kb": max(samples[:quarter]),
            "rss_last_quarter_max_kb": max(samples[-quarter:]), "peak_rss_kb": proc_status_kb("VmHWM")}


# --- the upload -----------------------------------------------------------------------------------
def upload(a: argparse.Namespace) -> dict[str, Any]:
    fixtures = json.loads(Path(a.db).with_suffix(".json").read_text())
    workdir, db_path = db_copy(a.db)
    csv_path = os.path.join(workdir, "cases.csv")
    with open(csv_path, "w") as file:
        file.write("question,context,expected\n")
        for index in range(a.rows):
            file.write(f"question number {index} about the matter at hand,context {index % 97} of the case,"
                       f"the expected answer {index * 2}\n")
    server = Daphne(db_path, a.server_cpu)
    auth = {"Authorization": f"Token {fixtures['token']}", "X-Forwarded-Proto": "https"}
    try:
        urllib.request.urlopen(urllib.request.Request(f"{server.url}/api/datasets/", headers=auth), timeout=30).read()
        rss_before = server.kb("VmRSS")
        started = time.perf_counter()
        status, body = asyncio.run(_post_file(f"{server.url}/api/datasets/{fixtures['upload_dataset_id']}/import/",
                                              csv_path, auth))
        wall = time.perf_counter() - started
        out = {"impl": "upload", "rows": a.rows, "bytes": os.path.getsize(csv_path), "wall_s": round(wall, 3),
               "status": status, "row_count": body.get("row_count"), "server_rss_before_kb": rss_before,
               "server_peak_rss_kb": server.kb("VmHWM"), "server_tracebacks": server.tracebacks()}
    finally:
        server.stop()
    out["errors"] = int(status != 201 or out["row_count"] != a.rows) + out["server_tracebacks"]
    if not os.environ.get("BENCH_KEEP"):
        shutil.rmtree(workdir, ignore_errors=True)
    return out


async def _post_file(url: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        with open(path, "rb") as file:
            form = aiohttp.FormData()
            form.add_field("file", file, filename="cases.csv", content_type="text/csv")
            async with session.post(url, data=form, headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=600)) as response:
                return response.status, await response.json()


# --- the driver -----------------------------------------------------------------------------------
def _child(args: list[str], cpu: int | None) -> dict[str, Any]:
    process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *args], stdout=subprocess.PIPE,
                               text=True, cwd=ROOT)
    if cpu is not None:
        os.sched_setaffinity(process.pid, {cpu})
    stdout, _ = process.communicate(timeout=CHILD_TIMEOUT_SECONDS)
    if process.returncode != 0:
        raise RuntimeError(f"bench/experiments.py {args[0]} failed with exit code {process.returncode}")
    return json.loads(stdout.strip().splitlines()[-1])


def targets(result: dict[str, Any]) -> list[tuple[str, bool, str]]:
    raw, exp, up = result.get("raw"), result.get("experiment"), result.get("upload")
    found: list[tuple[str, bool, str]] = []
    if raw and exp:
        ratio = exp["wall_s"] / raw["wall_s"]
        found.append(("experiment wall (create to finished) <= 1.3x raw-aiohttp", ratio <= 1.3,
                      f"{exp['wall_s']:.2f} s vs {raw['wall_s']:.2f} s = {ratio:.2f}x"))
        found.append(("experiment: server peak RSS < 500 MB", exp["server_peak_rss_kb"] < 500 * 1024,
                      f"{exp['server_peak_rss_kb'] / 1024:.0f} MB"))
        found.append(("experiment: 0 errors", exp["errors"] + exp["mismatches"] == 0,
                      f"{exp['succeeded']} succeeded of {exp['cells']}, {exp['errors']} errors, "
                      f"{exp['mismatches']} wrong outputs"))
        ex = exp["export"]
        found.append(("export of the results (CSV) < 5 s", ex["export_s"] < 5, f"{ex['export_s']:.2f} s, "
                      f"{ex['lines'] - 1} rows, {ex['bytes'] / 2**20:.1f} MiB"))
        growth = (ex["rss_last_quarter_max_kb"] - ex["rss_first_quarter_max_kb"]) / 1024
        found.append(("export: memory flat (RSS of the last quarter of chunks vs the first) < 10 MB", growth < 10,
                      f"{ex['rss_before_kb'] / 1024:.0f} MB before, first quarter max "
                      f"{ex['rss_first_quarter_max_kb'] / 1024:.0f}, last quarter max "
                      f"{ex['rss_last_quarter_max_kb'] / 1024:.0f} MB"))
    if up:
        found.append((f"upload of {up['rows']} CSV rows: server peak RSS < 300 MB",
                      up["server_peak_rss_kb"] < 300 * 1024 and not up["errors"],
                      f"{up['server_peak_rss_kb'] / 1024:.0f} MB (before {up['server_rss_before_kb'] / 1024:.0f} MB), "
                      f"{up['wall_s']:.1f} s, HTTP {up['status']}"))
    return found


def render(result: dict[str, Any]) -> str:
    raw, exp = result.get("raw"), result.get("experiment")
    lines = []
    if raw and exp:
        lines += ["| figure | raw-aiohttp | experiment (daphne, embedded) |", "|---|---:|---:|",
                  f"| wall for {exp['cells']} calls / cells at concurrency {exp['concurrency']} (s) | "
                  f"{raw['wall_s']:.2f} | {exp['wall_s']:.2f} ({exp['wall_s'] / raw['wall_s']:.2f}x) |",
                  f"| from the server's first cell to finished (s) | | {exp['drive_s']:.2f} "
                  f"({exp['drive_s'] / raw['wall_s']:.2f}x) |",
                  f"| CPU per call / cell (ms; client / server process) | {raw['cpu_ms_per_cell']:.2f} | "
                  f"{exp['server_cpu_ms_per_cell']:.2f} ({exp['server_cpu_ms_per_cell'] / raw['cpu_ms_per_cell']:.2f}x) |",
                  f"| peak RSS (MB) | {raw['peak_rss_kb'] / 1024:.0f} (client) | "
                  f"{exp['server_peak_rss_kb'] / 1024:.0f} (server; {exp['server_rss_before_kb'] / 1024:.0f} at start) |",
                  f"| errors, wrong outputs | {raw['errors']}, {raw['mismatches']} | {exp['errors']}, {exp['mismatches']} |",
                  f"| driver passes (ticks) | | {exp['ticks']} |", ""]
    for label, met, figures in targets(result):
        lines.append(f"- [{'MET' if met else 'MISSED'}] {label}: {figures}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd")
    setup = sub.add_parser("setup-db")
    setup.add_argument("--db", required=True)
    setup.add_argument("--base-url", required=True)
    setup.add_argument("--cells", type=int, required=True)
    raw = sub.add_parser("raw")
    raw.add_argument("--base-url", required=True)
    for child in (raw,):
        child.add_argument("--cells", type=int, required=True)
        child.add_argument("--tokens", type=int, default=20)
    for child in (raw, exp := sub.add_parser("experiment")):
        child.add_argument("--concurrency", type=int, default=100)
    exp.add_argument("--db", required=True)
    exp.add_argument("--timeout", type=float, default=900)
    exp.add_argument("--server-cpu", type=int, default=None)
    ex = sub.add_parser("export")
    ex.add_argument("--db", required=True)
    ex.add_argument("--experiment", type=int, required=True)
    up = sub.add_parser("upload")
    up.add_argument("--db", required=True)
    up.add_argument("--rows", type=int, required=True)
    up.add_argument("--server-cpu", type=int, default=None)
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--upload-rows", type=int, default=100_000, help="0: no upload phase")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--out")
    a = parser.parse_args()
    if a.cmd == "setup-db":
        setup_db(a)
        return 0
    if a.cmd:
        phase = {"raw": lambda: asyncio.run(raw_aiohttp(a)), "experiment": lambda: experiment(a),
                 "export": lambda: export(a), "upload": lambda: upload(a)}[a.cmd]
        print(json.dumps(phase()), flush=True)
        return 0
    return run_all(a, parser)


def run_all(a: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from run import machine, start_fake_server

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    pin = not a.no_pin and len(os.sched_getaffinity(0)) >= 2
    server_cpu, client_cpu = (1, 0) if pin else (None, None)
    started = time.monotonic()
    fake, base = start_fake_server(a.latency_ms, a.tokens, server_cpu)
    workdir = tempfile.mkdtemp(prefix="orch-bench-exp-template-")
    result: dict[str, Any] = {"kind": "experiments", "args": vars(a), "pinned": pin, "machine": machine(),
                              "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    failures: list[str] = []
    try:
        template = os.path.join(workdir, "template.sqlite3")
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "setup-db", "--db", template,
                        "--base-url", f"{base}/v1", "--cells", str(a.cells)], check=True, cwd=ROOT)
        cpu = [] if client_cpu is None else ["--server-cpu", str(client_cpu)]
        phases = [("raw", ["raw", "--base-url", f"{base}/v1", "--cells", str(a.cells), "--tokens", str(a.tokens),
                           "--concurrency", str(a.concurrency)]),
                  ("experiment", ["experiment", "--db", template, "--concurrency", str(a.concurrency), *cpu])]
        if a.upload_rows:
            phases.append(("upload", ["upload", "--db", template, "--rows", str(a.upload_rows), *cpu]))
        for name, args in phases:
            print(f"[{time.monotonic() - started:5.0f}s] {name} ...", file=sys.stderr, flush=True)
            urllib.request.urlopen(urllib.request.Request(f"{base}/_reset", data=b"", method="POST"), timeout=10).read()
            try:
                result[name] = _child(args, client_cpu)
            except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as exc:
                failures.append(f"{name}: {exc}")
    finally:
        fake.terminate()
        fake.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    result["duration_s"] = round(time.monotonic() - started)
    result["machine"]["loadavg_end"] = os.getloadavg()
    defaults = all(getattr(a, k) == parser.get_default(k) for k in ("cells", "concurrency", "latency_ms", "tokens",
                                                                     "upload_rows", "no_pin"))
    (HERE / "results").mkdir(exist_ok=True)
    out = Path(a.out) if a.out else HERE / "results" / f"experiments-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    if defaults and not failures and not a.out:
        shutil.copyfile(out, HERE / "latest-experiments.json")
    print(render(result))
    print(f"\nrows: {out}; {result['duration_s']} s")
    errors = sum(result[k].get("errors", 0) + result[k].get("mismatches", 0) for k in ("raw", "experiment", "upload")
                 if k in result)
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures or errors else 0


if __name__ == "__main__":
    sys.exit(main())
