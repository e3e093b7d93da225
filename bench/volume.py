"""`make bench-volume`: every list, filter, search and sort at a million runs (issue 18).

    .venv/bin/python bench/volume.py                       # 1,000,000 runs in a temp SQLite file (~15 min seeding)
    .venv/bin/python bench/volume.py --runs 50000          # while developing (VOLUME_RUNS=50000 also)
    .venv/bin/python bench/volume.py --keep /tmp/vol1m     # seed once into /tmp/vol1m, reuse it on the next call
    DATABASE_URL=postgres://... bench/volume.py            # distributed mode: an empty PostgreSQL database

Seeds realistic data with the models' own bulk writes: 20 workflows made through the services
(2-4 steps, a ~1 KB system prompt block shared by every step), 2-3 releases each (a block edited
between release_cut calls), then runs in bulk_create batches of 5,000: one workflow holds 28 %,
created_at uniform over the last 90 days, 90 % succeeded / 7 % failed / 3 % cancelled, and a
Response per step reached (system prompt + rendered user message, ~1 KB of word-salad output,
request_params, attempts). Then ANALYZE (VACUUM ANALYZE on PostgreSQL).

Measures in-process with django.test.Client (no HTTP server: the figures are Django's, the
middleware included), logged in as a superuser, with production settings (DEBUG off; only the
HTTPS redirect and secure cookies are off, since the test client speaks plain HTTP). Each request
is timed `--reps` times, each on a fresh database connection, and the median reported; one more
rep counts the queries. Every request must answer 200 (a route that 404s because it does not
exist yet is skipped and says so). Also reports bytes on disk per run (SQLite: the file plus its
WAL after a checkpoint) and the seeding time, and writes bench/results/volume-<time>.json (a run
of 1,000,000 runs or more also writes bench/latest-volume.json).

Features that keep derived data in step with writes (a statistics rollup, a full-text index) see
nothing of bulk_create: name the command that rebuilds them with `--after-seed "command args"`.
"""
from __future__ import annotations

import argparse
import bisect
import contextlib
import datetime
import itertools
import json
import logging
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

DEFAULT_RUNS = 1_000_000
FULL_RUN = 1_000_000
BATCH = 5_000
PROGRESS_SECONDS = 30
WORKFLOW_COUNT = 20
BUSIEST_SHARE = 0.28
DAYS = 90
STATUSES = (("succeeded", 0.90), ("failed", 0.07), ("cancelled", 0.03))
# Steps per workflow: the busiest has 3; with failures and cancellations this averages ~2.85 responses a run.
STEP_COUNTS = [3] + [2] * 6 + [3] * 7 + [4] * 6
OUTPUT_WORDS = 150  # ~1 KB of text per step
SEARCH_RANK = 300  # the searched word: common enough to fill a page, rare enough that a scan must read far
BUSIEST_NAME = "volume-00-busiest"
SYSTEM_PROMPT = (
    "You are a careful technical writer working for a team that publishes reference material. "
    "Write in plain English, in short paragraphs, without marketing language, without exclamation marks "
    "and without lists unless a list is asked for. Prefer concrete examples over general statements; name "
    "the thing you describe before you describe it; define every term the first time you use it. When the "
    "request is ambiguous, choose the most common reading and say which reading you chose in one sentence. "
    "Never invent numbers, people, products, laws or quotations; when you do not know something, say so. "
    "Keep the answer under four hundred words. Do not repeat the question. Do not apologise. Do not mention "
    "that you are a language model. Use the metric system and ISO dates. When you quote code, quote only "
    "what is needed and say which language it is in. When a step gives you the output of an earlier step, "
    "keep its facts and its terms, correct what is plainly wrong, and say what you corrected at the end."
)


# --- Settings --------------------------------------------------------------------------------------

def configure(database_url: str) -> None:
    """Production settings (DEBUG off) against the bench's database, then django.setup()."""
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "orchestrator.settings", "DATABASE_URL": database_url, "DEBUG": "0",
        "SECRET_KEY": "bench-volume-secret-key-not-for-production", "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
        # The test client speaks plain HTTP: no redirect to HTTPS, no cookies that only travel over it.
        "SECURE_SSL_REDIRECT": "0", "SESSION_COOKIE_SECURE": "0", "CSRF_COOKIE_SECURE": "0",
        "SECURE_HSTS_SECONDS": "0", "SECURE_PROXY_SSL_HEADER": "",
        "LLM_ENDPOINT_ALLOW_LOOPBACK": "1",  # the endpoint points at loopback; nothing is called
        "RUNS_BACKEND": "embedded", "LOG_LEVEL": "WARNING",
        "METRICS_ALLOWED_NETWORKS": "127.0.0.0/8",  # production needs /metrics guarded
    })
    os.environ.pop("TEST_DATABASE_NAME", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://", "pgsql://"))


# --- Text ------------------------------------------------------------------------------------------

class Words:
    """A Zipf-distributed vocabulary of pseudo-words, so texts repeat words the way prose does."""

    SYLLABLES = ["ka", "lo", "mi", "ter", "on", "sa", "vel", "dra", "pi", "nu", "ros", "el", "tan", "qui", "bor",
                 "ge", "fa", "lin", "shu", "wex", "po", "ran", "dis", "cu", "mor", "zi", "hap", "ent", "ol", "ys"]

    TABLE_SIZE = 1 << 16

    def __init__(self, rng: random.Random, size: int = 5000) -> None:
        self.rng = rng
        seen: dict[str, None] = {}
        while len(seen) < size:
            seen["".join(rng.choices(self.SYLLABLES, k=rng.choice((1, 2, 2, 3, 3, 4))))] = None
        self.vocabulary = list(seen)
        # Each word repeated in proportion to 1/rank: a uniform pick from this table draws from the Zipf
        # distribution 6x faster than choices(cum_weights=...), which seeding a million runs feels.
        harmonic = sum(1 / rank for rank in range(1, size + 1))
        self.table = [word for rank, word in enumerate(self.vocabulary, 1)
                      for _ in range(max(1, round(self.TABLE_SIZE / (rank * harmonic))))]

    def words(self, count: int) -> list[str]:
        return self.rng.choices(self.table, k=count)

    def sentence_salad(self, count: int) -> str:
        words = self.words(count)
        for at in range(11, count, 12):
            words[at] += "."
        return " ".join(words).capitalize() + "."

    @property
    def search_word(self) -> str:
        return self.vocabulary[SEARCH_RANK]


# --- Seeding: the tree through the services -----------------------------------------------------------

@dataclass
class StepPlan:
    output_key: str
    payload_name: str
    model: str
    request_params: dict[str, Any]
    system: str
    user_template: str  # the rendered user message with TOPIC in place of the topic


@dataclass
class ReleasePlan:
    release_id: int
    steps: list[StepPlan]


@dataclass
class WorkflowPlan:
    workflow_id: int
    name: str
    releases: list[ReleasePlan] = field(default_factory=list)


TOPIC = "\x00topic\x00"


def release_plan(release: Any) -> ReleasePlan:
    """What a run of this release sends at each step, rendered once from the release's snapshot."""
    from payloads.services import render_messages

    steps = []
    for step in release.snapshot["steps"]:
        messages = render_messages(step["blocks"], {"topic": TOPIC})
        payload = step["payload"]
        steps.append(StepPlan(output_key=step["output_key"], payload_name=payload["name"], model=payload["model"],
                              request_params=payload["params"], system=messages[0]["content"],
                              user_template=messages[-1]["content"]))
    return ReleasePlan(release_id=release.pk, steps=steps)


def seed_tree(rng: random.Random) -> tuple[list[WorkflowPlan], Any]:
    """The superuser, one endpoint, 20 workflows with 2-3 releases each: made as a person would make them."""
    from django.contrib.auth import get_user_model

    from blocks.services import block_create, block_update
    from llm.models import Endpoint
    from payloads.services import payload_create
    from releases.services import release_cut
    from workflows.services import workflow_create

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-password")
    endpoint = Endpoint(name="volume", base_url="http://127.0.0.1:9/v1", default_model="gpt-4o-mini")
    endpoint.set_api_key("sk-bench")
    endpoint.full_clean()
    endpoint.save()
    system = block_create(name="volume-system", content=SYSTEM_PROMPT, user=user)
    plans = []
    for n, step_count in enumerate(STEP_COUNTS):
        name = BUSIEST_NAME if n == 0 else f"volume-{n:02d}"
        steps, user_blocks = [], []
        for index in range(step_count):
            block = block_create(name=f"{name}-step{index}", user=user,
                                 content=f"Step {index + 1} of {name}: write about {{{{ topic }}}}. Keep what the "
                                         "earlier steps established and add one new point.")
            payload = payload_create(name=f"{name}-step{index}", endpoint=endpoint, user=user, temperature=0.7,
                                     max_tokens=400, blocks=[{"block": system, "role": "system"},
                                                             {"block": block, "role": "user"}])
            steps.append({"payload": payload, "output_key": f"s{index}"})
            user_blocks.append(block)
        workflow = workflow_create(name=name, inputs=[{"name": "topic"}], steps=steps, user=user)
        plan = WorkflowPlan(workflow_id=workflow.pk, name=name)
        for number in range(2 + n % 2):
            if number:
                block = user_blocks[number % len(user_blocks)]
                block_update(block=block, data={"content": f"{block.content}\nBe brief (edit {number})."}, user=user)
            release, _ = release_cut(workflow=workflow, user=user, message=f"release {number + 1}")
            plan.releases.append(release_plan(release))
        plans.append(plan)
    return plans, user


# --- Seeding: the runs in bulk ----------------------------------------------------------------------

@contextlib.contextmanager
def created_at_as_given(*models: Any) -> Iterator[None]:
    """Let bulk_create keep the created_at set on each instance. auto_now_add would stamp every row
    with the time of seeding; the bench only (never the product) switches it off while it seeds."""
    fields = [model._meta.get_field("created_at") for model in models]
    for created_at in fields:
        created_at.auto_now_add = False
    try:
        yield
    finally:
        for created_at in fields:
            created_at.auto_now_add = True


class RunMaker:
    """Builds Run and Response instances with realistic content, one batch at a time."""

    def __init__(self, plans: list[WorkflowPlan], user: Any, words: Words, rng: random.Random, total: int) -> None:
        self.plans, self.user, self.words, self.rng, self.total = plans, user, words, rng, total
        self.end = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        self.start = self.end - datetime.timedelta(days=DAYS)
        self.status_names = [name for name, _ in STATUSES]
        self.status_weights = list(itertools.accumulate(share for _, share in STATUSES))

    def _step_count_reached(self, status: str, steps: int) -> tuple[int, bool]:
        """How many steps have a response, and whether the last of them failed."""
        if status == "succeeded":
            return steps, False
        stopped_at = self.rng.randrange(steps)
        if status == "failed":
            return stopped_at + 1, True
        return stopped_at, False  # cancelled before that step started

    def _response(self, step: StepPlan, index: int, topic: str, at: datetime.datetime, failed: bool) -> Any:
        from runs.models import Response

        rng = self.rng
        latency = int(rng.lognormvariate(7.0, 0.5))  # ~1.1 s median per LLM call
        system, user_message = step.system, step.user_template.replace(TOPIC, topic)
        prompt_tokens = (len(system) + len(user_message)) // 4
        if failed:
            attempts = [{"attempt": n, "ok": False, "kind": "server_error", "http_status": 500,
                         "error": "Internal Server Error", "latency_ms": latency // 3} for n in range(1, 4)]
            output, completion_tokens, error = "", 0, "LLM server error 500 after 3 attempts: Internal Server Error"
        else:
            attempts = [{"attempt": 1, "ok": True, "latency_ms": latency}]
            output = self.words.sentence_salad(OUTPUT_WORDS)
            completion_tokens, error = len(output) // 4, ""
        return Response(
            index=index, output_key=step.output_key, payload_name=step.payload_name, endpoint_name="volume",
            model=step.model, messages=[{"role": "system", "content": system}, {"role": "user", "content": user_message}],
            request_params=step.request_params, output=output, finish_reason="" if failed else "stop",
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, latency_ms=latency, attempts=attempts,
            status="failed" if failed else "succeeded", error=error, created_at=at)

    def batch(self, first: int, count: int) -> tuple[list[Any], list[list[Any]]]:
        """Runs number first..first+count-1 (created_at rising with the number, as ids do) and their responses."""
        from runs.models import Run

        rng, span = self.rng, (self.end - self.start).total_seconds()
        runs, responses = [], []
        for number in range(first, first + count):
            plan = self.plans[0] if rng.random() < BUSIEST_SHARE else self.plans[rng.randrange(1, len(self.plans))]
            fraction = (number + rng.random()) / self.total
            release = plan.releases[min(int(fraction * len(plan.releases)), len(plan.releases) - 1)]
            created = self.start + datetime.timedelta(seconds=fraction * span)
            status = self.status_names[bisect.bisect(self.status_weights, rng.random() * self.status_weights[-1])]
            reached, failed = self._step_count_reached(status, len(release.steps))
            topic = " ".join(self.words.words(rng.randint(2, 4)))
            at = created + datetime.timedelta(milliseconds=40)
            steps = []
            for index in range(reached):
                response = self._response(release.steps[index], index, topic, at, failed and index == reached - 1)
                at += datetime.timedelta(milliseconds=response.latency_ms + 15)
                steps.append(response)
            runs.append(Run(
                workflow_id=plan.workflow_id, workflow_name=plan.name, status=status, inputs={"topic": topic},
                release_id=release.release_id, created_by=self.user, created_at=created,
                started_at=created + datetime.timedelta(milliseconds=20), finished_at=at,
                step_count=len(release.steps), next_step=reached - 1 if failed else reached,
                prompt_tokens=sum(r.prompt_tokens for r in steps),
                completion_tokens=sum(r.completion_tokens for r in steps),
                latency_ms=sum(r.latency_ms for r in steps),
                error=f"Step {reached} ({release.steps[reached - 1].output_key}): {steps[-1].error}" if failed else "",
                output=steps[-1].output if status == "succeeded" else ""))
            responses.append(steps)
        return runs, responses


def response_content_bytes(responses: list[Any]) -> int:
    """The average size of what a response holds (its JSON and text fields), before any storage overhead."""
    total = sum(len(json.dumps(r.messages)) + len(json.dumps(r.request_params)) + len(json.dumps(r.attempts))
                + len(r.output) + len(r.error) for r in responses)
    return round(total / len(responses)) if responses else 0


def seed_runs(plans: list[WorkflowPlan], user: Any, total: int, rng: random.Random, words: Words) -> dict[str, Any]:
    from django.db import connection, transaction

    from runs.models import Response, Run

    if not connection.features.can_return_rows_from_bulk_insert:
        raise SystemExit("this database cannot return the ids of a bulk insert; the bench needs them for responses")
    maker = RunMaker(plans, user, words, rng, total)
    started, response_count = time.perf_counter(), 0
    shown = started
    with created_at_as_given(Run, Response):
        for first in range(0, total, BATCH):
            runs, responses = maker.batch(first, min(BATCH, total - first))
            with transaction.atomic():
                Run.objects.bulk_create(runs)
                for run, steps in zip(runs, responses, strict=True):
                    for response in steps:
                        response.run_id = run.pk
                flat = [response for steps in responses for response in steps]
                Response.objects.bulk_create(flat, batch_size=BATCH)
            response_count += len(flat)
            if first == 0:
                sample = response_content_bytes(flat)
            done = first + len(runs)
            if done % (BATCH * 10) == 0 or done == total or time.perf_counter() - shown > PROGRESS_SECONDS:
                shown = time.perf_counter()
                elapsed = time.perf_counter() - started
                print(f"  seeded {done:,}/{total:,} runs, {response_count:,} responses "
                      f"({elapsed:.0f} s, {done / elapsed:,.0f} runs/s)", flush=True)
    return {"runs": total, "responses": response_count, "responses_per_run": round(response_count / total, 3),
            "response_content_bytes": sample,
            "runs_seconds": round(time.perf_counter() - started, 1)}


def analyze() -> float:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    return round(time.perf_counter() - started, 1)


def seed(total: int, after_seed: list[str]) -> dict[str, Any]:
    from django.core.management import call_command

    rng = random.Random(18)
    words = Words(rng)
    started = time.perf_counter()
    plans, user = seed_tree(rng)
    print(f"  {len(plans)} workflows, {sum(len(p.releases) for p in plans)} releases "
          f"({time.perf_counter() - started:.1f} s)", flush=True)
    figures = seed_runs(plans, user, total, rng, words)
    for command in after_seed:
        print(f"  after seeding: manage.py {command}", flush=True)
        call_command(*shlex.split(command))
    figures["analyze_seconds"] = analyze()
    figures["seconds"] = round(time.perf_counter() - started, 1)
    figures["search_word"] = words.search_word
    return figures


# --- Measuring -------------------------------------------------------------------------------------

def requests_to_measure() -> list[tuple[str, str]]:
    """(row label, URL) of every request in the table, with ids and words read from the seeded data."""
    from django.db.models import Max, Min

    from runs.models import Run
    from workflows.models import Workflow

    busiest = Workflow.objects.get(name=BUSIEST_NAME).pk
    newest = Run.objects.aggregate(newest=Max("created_at"))["newest"]
    day = (newest - datetime.timedelta(days=DAYS // 2)).date().isoformat()
    bounds = Run.objects.aggregate(first=Min("id"), last=Max("id"))
    run_id = Run.objects.filter(id__gte=(bounds["first"] + bounds["last"]) // 2).order_by("id").values_list(
        "id", flat=True).first()
    word = Words(random.Random(18)).search_word
    return [
        ("GET /api/runs/?workflow=<busiest>", f"/api/runs/?workflow={busiest}"),
        ("GET /api/runs/?status=failed", "/api/runs/?status=failed"),
        ("GET /api/runs/?date=YYYY-MM-DD", f"/api/runs/?date={day}"),
        ("GET /api/runs/?search=word", f"/api/runs/?search={word}"),
        ("GET /api/runs/?ordering=-latency_ms", "/api/runs/?ordering=-latency_ms"),
        ("/runs/?workflow=..&status=failed (page)", f"/runs/?workflow={busiest}&status=failed"),
        ("/runs/?q=word", f"/runs/?q={word}"),
        ("run statistics of the busiest workflow", f"/runs/stats/?workflow={busiest}"),
        ("admin runs list", "/admin/runs/run/"),
        ("admin runs search", f"/admin/runs/run/?q={word}"),
        ("GET /api/workflows/", "/api/workflows/"),
        ("GET /api/workflows/<busiest>/releases/", f"/api/workflows/{busiest}/releases/"),
        ("GET /api/runs/ (first page)", "/api/runs/"),
        ("/runs/ (first page)", "/runs/"),
        ("GET /api/runs/<id>/", f"/api/runs/{run_id}/"),
        ("/runs/<id>/", f"/runs/{run_id}/"),
        ("/healthz", "/healthz"),
    ]


# Rows for routes that may not exist yet: a 404 there is reported as skipped, not as a failure.
OPTIONAL_ROWS = {"GET /api/workflows/<busiest>/releases/"}


def measure(reps: int) -> list[dict[str, Any]]:
    from django.contrib.auth import get_user_model
    from django.db import connection, connections
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    logging.getLogger("django.request").setLevel(logging.ERROR)  # the table shows every status; no 404 log lines
    client = Client()
    client.force_login(get_user_model().objects.get(username="bench"))
    rows = []
    for label, url in requests_to_measure():
        # The counting rep comes first, untimed: it also compiles the templates and imports what the view needs.
        connections.close_all()
        with CaptureQueriesContext(connection) as captured:
            statuses = {client.get(url).status_code}
        queries = len(captured)  # now: opening the next connection clears the log it reads
        timings = []
        for _ in range(reps):
            connections.close_all()  # each rep opens its own connection, as a new worker would
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
            statuses.add(response.status_code)
        row = {"request": label, "url": url, "median_ms": round(statistics.median(timings), 1),
               "ms": [round(t, 1) for t in timings], "queries": queries, "status": sorted(statuses)}
        if label in OPTIONAL_ROWS and statuses == {404}:
            row["skipped"] = "404: the route does not exist in this version"
            print(f"  skipped {label}: {url} answers 404 (no such route yet)", flush=True)
        else:
            print(f"  {label}: {row['median_ms']} ms, {row['queries']} queries, status {row['status']}", flush=True)
        rows.append(row)
    return rows


# --- Size on disk ------------------------------------------------------------------------------------

def sqlite_tables(cursor: Any) -> dict[str, int]:
    """Bytes per table and index, from the dbstat virtual table when SQLite was built with it."""
    try:
        cursor.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")
    except Exception:  # noqa: BLE001 - dbstat is a compile-time option; the total is reported anyway
        return {}
    return {name: int(size) for name, size in cursor.fetchall()}


def disk_usage() -> dict[str, Any]:
    from django.db import connection

    from runs.models import Response, Run

    runs, responses = Run.objects.count(), Response.objects.count()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_database_size(current_database())")
            total = cursor.fetchone()[0]
            cursor.execute("SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relkind = 'r' "
                           "AND relnamespace = 'public'::regnamespace ORDER BY 2 DESC LIMIT 12")
            tables = {name: int(size) for name, size in cursor.fetchall()}
            files = {"database": total}
        else:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            path = Path(connection.settings_dict["NAME"])
            files = {p.name: p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists()}
            total = sum(files.values())
            tables = sqlite_tables(cursor)
    return {"runs": runs, "responses": responses, "bytes": total, "files": files,
            "bytes_per_run": round(total / runs) if runs else None, "tables": tables}


# --- Report ----------------------------------------------------------------------------------------

def render_table(rows: list[dict[str, Any]], runs: int) -> str:
    lines = [f"| request | median ms ({runs:,} runs) | queries |", "|---|---:|---:|"]
    for row in rows:
        if "skipped" in row:
            lines.append(f"| `{row['request']}` | skipped ({row['skipped']}) | |")
            continue
        failed = "" if row["status"] == [200] else f" (status {', '.join(map(str, row['status']))})"
        lines.append(f"| `{row['request']}` | {row['median_ms']:,.1f}{failed} | {row['queries']} |")
    return "\n".join(lines)


def report(result: dict[str, Any]) -> str:
    disk, seeding = result["disk"], result["seeding"]
    lines = [render_table(result["rows"], disk["runs"]), ""]
    lines.append(f"bytes on disk per run: {disk['bytes_per_run']:,} ({disk['bytes'] / 1e6:,.1f} MB for "
                 f"{disk['runs']:,} runs and {disk['responses']:,} responses)")
    if disk["tables"]:
        biggest = ", ".join(f"{name} {size / 1e6:,.1f} MB" for name, size in list(disk["tables"].items())[:8])
        lines.append(f"largest tables and indexes: {biggest}")
    if "seconds" not in seeding:
        lines.append(f"seeding: reused {seeding['reused']}")
    else:
        reused = f" (reused {seeding['reused']})" if "reused" in seeding else ""
        lines.append(f"seeding{reused}: {seeding['seconds']:,.1f} s ({seeding['runs_seconds']:,.1f} s for the runs, "
                     f"ANALYZE {seeding['analyze_seconds']} s), {seeding['responses_per_run']} responses per run "
                     f"of {seeding['response_content_bytes']:,} bytes of content on average")
    return "\n".join(lines)


def metadata(reps: int, database: str) -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = ""
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"), "git_commit": commit, "reps": reps,
            "database": database, "nproc": os.cpu_count(), "python": platform.python_version()}


# --- Main ------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=int(os.environ.get("VOLUME_RUNS", DEFAULT_RUNS)),
                        help=f"runs to seed (default {DEFAULT_RUNS:,}, or VOLUME_RUNS)")
    parser.add_argument("--reps", type=int, default=5, help="timed reps per request (the median is reported)")
    parser.add_argument("--keep", metavar="DIR", help="SQLite: seed into DIR/db.sqlite3 and keep it; reuse it if it exists")
    parser.add_argument("--after-seed", action="append", default=[], metavar="COMMAND",
                        help='a manage.py command run after seeding, e.g. "rebuild_run_stats" (repeatable)')
    parser.add_argument("--out", help="JSON file (default bench/results/volume-<time>.json)")
    return parser.parse_args(argv)


SEEDING_FILE = "seeding.json"  # written beside a kept database once its seeding finished


def database_for(args: argparse.Namespace) -> tuple[str, Path | None, Path | None]:
    """(DATABASE_URL, a temp dir to delete at the end, the dir whose database is kept)."""
    url = os.environ.get("DATABASE_URL", "")
    if is_postgres(url):
        return url, None, None
    if args.keep:
        kept = Path(args.keep).resolve()
        kept.mkdir(parents=True, exist_ok=True)
        if (kept / "db.sqlite3").exists() and not (kept / SEEDING_FILE).exists():
            raise SystemExit(f"{kept}/db.sqlite3 was not seeded to the end: delete {kept} and seed again")
        return f"sqlite:///{kept / 'db.sqlite3'}", None, kept
    temporary = Path(tempfile.mkdtemp(prefix="orch-volume-"))
    return f"sqlite:///{temporary / 'db.sqlite3'}", temporary, None


def seed_or_reuse(args: argparse.Namespace, url: str, kept: Path | None) -> dict[str, Any]:
    """Seed, or reuse what a kept directory (or a PostgreSQL database with runs) already holds."""
    from runs.models import Run

    if kept is not None and (kept / SEEDING_FILE).exists():
        print(f"reusing {kept} ({Run.objects.count():,} runs; --runs is ignored)", flush=True)
        return {**json.loads((kept / SEEDING_FILE).read_text()), "reused": str(kept)}
    if kept is None and Run.objects.exists():
        print(f"reusing the runs already at {url.split('@')[-1]} ({Run.objects.count():,})", flush=True)
        return {"reused": url.split("@")[-1]}
    print(f"seeding {args.runs:,} runs", flush=True)
    seeding = seed(args.runs, args.after_seed)
    if kept is not None:
        (kept / SEEDING_FILE).write_text(json.dumps(seeding, indent=2) + "\n")
    return seeding


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url, temporary, kept = database_for(args)
    configure(url)
    from django.core.management import call_command

    try:
        started = time.perf_counter()
        call_command("migrate", verbosity=0, interactive=False)
        print(f"migrated ({time.perf_counter() - started:.1f} s)", flush=True)
        seeding = seed_or_reuse(args, url, kept)
        print(f"measuring ({args.reps} reps each, median)", flush=True)
        rows = measure(args.reps)
        result = {**metadata(args.reps, "postgresql" if is_postgres(url) else "sqlite"),
                  "seeding": seeding, "disk": disk_usage(), "rows": rows}
    finally:
        from django.db import connections

        connections.close_all()
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    print()
    print(report(result))
    out = Path(args.out) if args.out else HERE / "results" / f"volume-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    written = [str(out)]
    if result["disk"]["runs"] >= FULL_RUN:
        shutil.copyfile(out, HERE / "latest-volume.json")
        written.append("bench/latest-volume.json")
    print(f"\nwrote {' and '.join(written)}")
    failed = [row["request"] for row in rows if "skipped" not in row and row["status"] != [200]]
    if failed:
        print(f"not 200: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
