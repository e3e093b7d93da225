"""Faults lose nothing: LLM errors on 20% of requests, the server SIGKILLed mid-run, a database
write that fails mid-step. Every run finishes with exactly one response per step.

`make test` runs the shortened forms; `make soak` (SOAK=1) runs 1,000 runs and 20 kills.
"""
import asyncio
import json
import os
import random
import sqlite3
import time

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from runs.engine import execute_run
from runs.models import Response, Run
from runs.services import run_start
from tests.factories import expected_chain_output, make_chain, make_endpoint
from tests.reliability.conftest import soak_or

pytestmark = pytest.mark.django_db(transaction=True)

FIGURES = os.environ.get("RELIABILITY_FIGURES")  # a JSON-lines file that docs/reliability.md is written from


def record(name: str, **figures: object) -> None:
    if FIGURES:
        with open(FIGURES, "a") as out:
            out.write(json.dumps({"test": name, **figures}) + "\n")


def wait_until(predicate, timeout: float = 300.0, interval: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)
    return value


def all_finished(run_ids: list[int]) -> bool:
    return Run.objects.filter(pk__in=run_ids, status__in=["succeeded", "failed", "cancelled", "budget"]).count() == len(run_ids)


def steps_lost_and_duplicated(run_ids: list[int]) -> tuple[int, int]:
    """Steps with no response, and responses beyond one per step, over all the runs."""
    lost = duplicates = 0
    for run in Run.objects.filter(pk__in=run_ids):
        indexes = list(Response.objects.filter(run=run).values_list("index", flat=True))
        lost += len(set(range(run.step_count)) - set(indexes))
        duplicates += len(indexes) - len(set(indexes)) + len(set(indexes) - set(range(run.step_count)))
    return lost, duplicates


async def test_llm_errors_on_a_fifth_of_requests_are_retried_until_every_run_succeeds(fake_llm):
    runs, concurrency = soak_or(1000, 100), 100
    fake_llm.control(error_rate=0.2, seed=1, retry_after_ms=1)

    @sync_to_async
    def start_all() -> list[int]:
        workflow = make_chain(make_endpoint(fake_llm.base_url, max_retries=10))
        return [run_start(workflow=workflow, inputs={"topic": f"t{i}"}, user=None).pk for i in range(runs)]

    run_ids = await start_all()
    limit = asyncio.Semaphore(concurrency)

    async def execute(run_id: int) -> str:
        async with limit:
            return await execute_run(run_id)

    statuses = await asyncio.gather(*(execute(run_id) for run_id in run_ids))
    assert statuses == ["succeeded"] * runs

    @sync_to_async
    def check() -> dict:
        lost, duplicates = steps_lost_and_duplicated(run_ids)
        attempts = [a for attempts in Response.objects.filter(run_id__in=run_ids).values_list("attempts", flat=True)
                    for a in attempts]
        outputs = dict(Run.objects.filter(pk__in=run_ids).values_list("inputs__topic", "output"))
        return {"lost": lost, "duplicates": duplicates, "attempts": attempts, "outputs": outputs}

    found = await check()
    stats = fake_llm.stats()
    failed_attempts = [a for a in found["attempts"] if not a["ok"]]
    assert found["lost"] == 0 and found["duplicates"] == 0
    # Every request the server saw is recorded as an attempt, and every error it sent as a failed one.
    assert len(found["attempts"]) == stats["chat_requests"]
    assert len(failed_attempts) == stats["errors"] > runs * 3 * 0.1
    assert {a.get("http_status") for a in failed_attempts} == {429, 500}
    assert all(found["outputs"][f"t{i}"] == expected_chain_output(f"t{i}") for i in range(runs))
    record("llm_errors", runs=runs, concurrency=concurrency, requests=stats["chat_requests"],
           faults_injected=stats["errors"], runs_succeeded=statuses.count("succeeded"), steps_lost=found["lost"],
           duplicates=found["duplicates"])


def test_server_sigkilled_at_random_points_loses_and_duplicates_no_step(fake_llm, app_server):
    kills = soak_or(20, 4)
    # Slow steps, and new runs before every start: each kill finds runs at different steps.
    fake_llm.control(latency_ms=soak_or(700, 400))
    workflow = make_chain(make_endpoint(fake_llm.base_url))
    run_ids: list[int] = []
    rng = random.Random(20)
    killed_mid_run = 0
    for kill in range(kills):
        run_ids += [run_start(workflow=workflow, inputs={"topic": f"k{kill}-{i}"}, user=None).pk for i in range(2)]
        server = app_server(wait_for_http_ready=False)
        time.sleep(rng.uniform(0.2, 1.2))
        server.kill()
        killed_mid_run += not all_finished(run_ids)
    app_server(wait_for_http_ready=False)
    wait_until(lambda: all_finished(run_ids))
    assert killed_mid_run >= kills // 2  # the kills did land mid-run
    lost, duplicates = steps_lost_and_duplicated(run_ids)
    assert (lost, duplicates) == (0, 0)
    for run in Run.objects.filter(pk__in=run_ids):
        assert run.status == "succeeded", run.error
        assert run.output == expected_chain_output(run.inputs["topic"])
    record("sigkill_embedded", kills=kills, kills_mid_run=killed_mid_run, runs=len(run_ids),
           runs_succeeded=Run.objects.filter(pk__in=run_ids, status="succeeded").count(),
           steps_lost=lost, duplicates=duplicates)


def test_budgeted_runs_sigkilled_stop_at_their_cap_with_each_steps_cost_counted_once(fake_llm, app_server):
    """A run's cap is checked where steps are claimed and committed: kills at any point neither
    skip the check nor pay for a step twice. $1,000 per million output tokens, max_tokens 100
    (a step's worst case $0.10) and a cap of $0.13: two steps of about $0.02 each run, the third
    could pass the cap, so every run ends "budget" after exactly two."""
    import datetime
    from decimal import Decimal

    from django.utils import timezone

    from prices.models import Price
    from prices.services import price_save
    from runs.models import StepRollup

    price_save(Price(model="gpt-4o-mini", effective_from=timezone.now() - datetime.timedelta(days=1),
                     input_per_million=Decimal("1"), output_per_million=Decimal("1000")))
    fake_llm.control(latency_ms=400)
    workflow = make_chain(make_endpoint(fake_llm.base_url), max_tokens=100)
    run_ids: list[int] = []
    rng = random.Random(19)
    for kill in range(soak_or(10, 3)):
        run_ids += [run_start(workflow=workflow, inputs={"topic": f"b{kill}-{i}"}, user=None, budget="0.13").pk
                    for i in range(2)]
        server = app_server(wait_for_http_ready=False)
        time.sleep(rng.uniform(0.2, 1.2))
        server.kill()
    app_server(wait_for_http_ready=False)
    wait_until(lambda: all_finished(run_ids))
    for run in Run.objects.filter(pk__in=run_ids):
        assert run.status == "budget", run.error
        assert run.error.startswith("Budget reached: ") and "step 3 (summary) could cost up to $0.1000" in run.error
        steps = list(Response.objects.filter(run=run).order_by("index"))
        assert [s.index for s in steps] == [0, 1] and all(s.cost_nano and s.cost_source == "computed" for s in steps)
    steps = Response.objects.filter(run_id__in=run_ids)
    assert StepRollup.objects.get().steps == steps.count() == 2 * len(run_ids)
    assert StepRollup.objects.get().cost_nano == sum(s.cost_nano for s in steps)


def test_a_database_write_that_fails_mid_step_leaves_the_run_resumable(fake_llm, app_server):
    """Another connection holds SQLite's write lock longer than the server's busy timeout while a
    step's answer arrives, so writing that answer fails; the run then resumes and completes."""
    fake_llm.control(latency_ms=1500)
    workflow = make_chain(make_endpoint(fake_llm.base_url))
    run = run_start(workflow=workflow, inputs={"topic": "locked"}, user=None)
    server = app_server(wait_for_http_ready=False, SQLITE_BUSY_TIMEOUT="1")
    wait_until(lambda: fake_llm.stats()["inflight"] >= 1, timeout=60, interval=0.02)  # step 0 is at the LLM
    locker = sqlite3.connect(settings.DATABASES["default"]["NAME"], timeout=30, isolation_level=None)
    try:
        locker.execute("BEGIN IMMEDIATE")  # the write lock: every writer now waits, then fails after 1 s
        wait_until(lambda: fake_llm.stats()["inflight"] == 0, timeout=60, interval=0.02)  # the answer is back
        time.sleep(3)  # past the busy timeout: the server's write of step 0 has failed
        assert not Response.objects.filter(run=run).exists()  # (read-only: a reader is not blocked in WAL mode)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    server.kill()  # whatever state the failure left, a fresh server must finish the run
    app_server(wait_for_http_ready=False)
    wait_until(lambda: all_finished([run.pk]))
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert run.output == expected_chain_output("locked")
    assert list(Response.objects.filter(run=run).order_by("index").values_list("index", flat=True)) == [0, 1, 2]
    record("db_write_failure", runs=1, faults_injected=1, runs_succeeded=1, steps_lost=0, duplicates=0)


def test_server_sigkilled_mid_map_commits_every_item_exactly_once(fake_llm, app_server):
    """Issue 22: kill -9 of the server in the middle of 100-item maps, at random points (20 in the soak)."""
    from tests.flow_checks import assert_every_map_item_committed_once, claims_of, make_map_workflow

    kills = soak_or(20, 4)
    fake_llm.control(latency_ms=200, log_requests=True)
    workflow = make_map_workflow(fake_llm.base_url)
    run_ids: list[int] = []
    rng = random.Random(22)
    killed_mid_map = 0
    for kill in range(kills):
        run_ids.append(run_start(workflow=workflow, inputs={"claims": claims_of(f"k{kill}")}, user=None).pk)
        server = app_server(wait_for_http_ready=False)
        time.sleep(rng.uniform(0.5, 2.5))
        server.kill()
        killed_mid_map += Response.objects.filter(run_id__in=run_ids, index=0, item__gt=0).count() < 100 * len(run_ids)
    app_server(wait_for_http_ready=False)
    wait_until(lambda: all_finished(run_ids))
    assert killed_mid_map >= kills // 2  # the kills did land mid-map
    figures = assert_every_map_item_committed_once(run_ids, fake_llm.requests_logged())
    record("sigkill_map_embedded", kills=kills, kills_mid_map=killed_mid_map, **figures)
