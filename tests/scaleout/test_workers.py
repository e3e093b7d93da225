"""Runs executed by real Procrastinate worker processes on PostgreSQL, through crashes."""
from __future__ import annotations

import os
import random
import signal
import statistics
import time
from collections import Counter

import pytest
from django.db.models import Count

from runs.models import FINAL_STATUSES, Response, Run
from runs.services import run_cancel, run_start
from tests.factories import CHAIN_PROMPTS, expected_chain_output, make_chain, make_endpoint
from tests.fake_llm import reply_text
from tests.scaleout.conftest import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def start_runs(fake_llm, count: int, *, stream: bool = False, prefix: str = "t") -> list[int]:
    workflow = make_chain(make_endpoint(fake_llm.base_url), stream=stream)
    return [run_start(workflow=workflow, inputs={"topic": f"{prefix}{i}"}, user=None).pk for i in range(count)]


def wait_for_final(run_ids: list[int], timeout: float) -> None:
    def all_final() -> bool:
        return not Run.objects.filter(pk__in=run_ids).exclude(status__in=FINAL_STATUSES).exists()

    wait_until(all_final, timeout, "runs still active: " + repr(
        Counter(Run.objects.filter(pk__in=run_ids).values_list("status", flat=True))), interval=0.2)


def assert_every_run_succeeded_once_per_step(run_ids: list[int], prefix: str = "t") -> None:
    runs = {run.pk: run for run in Run.objects.filter(pk__in=run_ids)}
    assert Counter(run.status for run in runs.values()) == {"succeeded": len(run_ids)}
    indices: dict[int, list[int]] = {pk: [] for pk in run_ids}
    for run_id, index in Response.objects.filter(run_id__in=run_ids).order_by("index").values_list("run_id", "index"):
        indices[run_id].append(index)
    assert {pk: idx for pk, idx in indices.items() if idx != [0, 1, 2]} == {}
    for number, pk in enumerate(run_ids):
        assert runs[pk].output == expected_chain_output(f"{prefix}{number}")


def jobs_started_by(worker) -> int:
    return worker.log().count("Starting job runs.advance_run")


def test_two_workers_share_200_runs_with_one_response_per_step(fake_llm, start_worker):
    first, second = start_worker(concurrency=50), start_worker(concurrency=50)
    run_ids = start_runs(fake_llm, 200)

    wait_for_final(run_ids, timeout=240)

    assert_every_run_succeeded_once_per_step(run_ids)
    assert jobs_started_by(first) > 0 and jobs_started_by(second) > 0
    assert fake_llm.stats()["chat_requests"] == 600


def test_worker_killed_mid_step_leaves_every_run_finished_once_per_step(fake_llm, start_worker):
    """SIGKILL at random moments; the soak form (SCALEOUT_KILLS=20, make soak) kills 20 times."""
    kills = int(os.environ.get("SCALEOUT_KILLS", "3"))
    fake_llm.control(latency_ms=400)
    workers = [start_worker(concurrency=4), start_worker(concurrency=4)]
    run_ids = start_runs(fake_llm, 8 * kills + 10)
    rng = random.Random(kills)
    held_at_kill: list[tuple[float, dict[int, int]]] = []
    for _ in range(kills):
        time.sleep(rng.uniform(0.5, 2.0))
        victim = workers.pop(rng.randrange(len(workers)))
        held = dict(Run.objects.filter(pk__in=run_ids, lease_owner__contains=f":{victim.pid}:")
                    .values_list("pk", "next_step"))
        victim.signal(signal.SIGKILL)
        held_at_kill.append((time.time(), held))
        workers.append(start_worker(concurrency=4))

    wait_for_final(run_ids, timeout=240)

    assert_every_run_succeeded_once_per_step(run_ids)
    assert any(held for _, held in held_at_kill), "no kill landed while the worker held a step"
    # Recovery: from the kill to the step the dead worker held being committed by another one.
    recoveries = []
    for killed_at, held in held_at_kill:
        for run_id, step in held.items():
            committed = Response.objects.get(run_id=run_id, index=step).created_at.timestamp()
            if committed > killed_at:
                recoveries.append(committed - killed_at)
    print(f"\nkill -9 recovery over {kills} kills (kill to the held step committed elsewhere, s): "
          f"median {statistics.median(recoveries):.1f}, max {max(recoveries):.1f}")


def test_worker_paused_past_its_lease_cannot_commit_over_the_one_that_took_over(fake_llm, start_worker):
    fake_llm.control(latency_ms=1500)
    paused = start_worker(concurrency=5, RUNS_LEASE_SECONDS="2")
    (run_id,) = start_runs(fake_llm, 1)
    wait_until(lambda: Run.objects.filter(pk=run_id, lease_owner__contains=f":{paused.pid}:").exists(), 30,
               "the first worker never claimed the run")
    first_step = Run.objects.get(pk=run_id).next_step
    paused.signal(signal.SIGSTOP)
    try:
        taker = start_worker(concurrency=5, RUNS_LEASE_SECONDS="2")
        wait_until(lambda: Response.objects.filter(run_id=run_id, index=first_step).exists(), 60,
                   "nobody took the paused worker's step over")
        committed = Response.objects.get(run_id=run_id, index=first_step)
        assert f":{paused.pid}:" not in Run.objects.get(pk=run_id).lease_owner
    finally:
        paused.signal(signal.SIGCONT)
    # The paused worker wakes up with its LLM answer in hand and a lease that is no longer its own.
    paused.wait_for_log(f"run {run_id}: job", timeout=30)
    wait_for_final([run_id], timeout=60)

    assert Run.objects.get(pk=run_id).status == "succeeded"
    assert list(Response.objects.filter(run_id=run_id).order_by("index").values_list("index", flat=True)) == [0, 1, 2]
    after = Response.objects.get(run_id=run_id, index=first_step)
    assert (after.pk, after.created_at, after.output) == (committed.pk, committed.created_at, committed.output)
    assert f"run {run_id}: job" in taker.log()
    assert "ended with None" in paused.log()


def test_cancel_reaches_a_step_streaming_on_another_worker_within_two_seconds(fake_llm, start_worker):
    fake_llm.control(inter_token_ms=100, tokens=300)
    start_worker(concurrency=5, RUNS_HEARTBEAT_SECONDS="1")  # the distributed-mode default
    (run_id,) = start_runs(fake_llm, 1, stream=True)
    run = wait_until(lambda: Run.objects.filter(pk=run_id, status="running").first(), 30, "the run never started")
    time.sleep(1.0)  # some text streamed

    asked_at = time.monotonic()
    run_cancel(run=run)
    run = wait_until(lambda: Run.objects.filter(pk=run_id, status="cancelled").first(), 10,
                     "the cancel never reached the worker")
    took = time.monotonic() - asked_at

    print(f"\ncancel reached the worker's step in {took:.2f} s")
    assert took <= 2.0
    response = Response.objects.get(run_id=run_id)
    assert response.status == "cancelled"
    full_reply = reply_text(CHAIN_PROMPTS[0].replace("{{ topic }}", "t0"), 300)
    assert 0 < len(response.output) < len(full_reply)
    assert full_reply.startswith(response.output)


def test_drained_worker_leaves_its_runs_resumable(fake_llm, start_worker):
    fake_llm.control(latency_ms=3000)
    draining = start_worker(concurrency=5, RUNS_WORKER_GRACE_SECONDS="0.5")
    (run_id,) = start_runs(fake_llm, 1)
    wait_until(lambda: Run.objects.filter(pk=run_id, lease_owner__contains=f":{draining.pid}:").exists(), 30,
               "the worker never claimed the run")

    draining.signal(signal.SIGTERM)
    assert draining.process.wait(30) is not None
    assert "lease released" in draining.log()
    fake_llm.control(latency_ms=0)
    start_worker(concurrency=5)
    wait_for_final([run_id], timeout=60)

    assert_every_run_succeeded_once_per_step([run_id])


def test_a_run_dispatched_twice_has_one_waiting_job(fake_llm):
    from procrastinate.contrib.django.models import ProcrastinateJob

    from runs.engine import tasks

    run_ids = start_runs(fake_llm, 3)  # no worker runs: the jobs wait
    for run_id in run_ids:
        tasks.defer_run(run_id)

    waiting = (ProcrastinateJob.objects.filter(task_name=tasks.ADVANCE_TASK, status="todo",
                                               queueing_lock__in=[tasks.queueing_lock(pk) for pk in run_ids])
               .values("queueing_lock").annotate(jobs=Count("id")))
    assert {row["queueing_lock"]: row["jobs"] for row in waiting} == {tasks.queueing_lock(pk): 1 for pk in run_ids}


def test_one_job_per_step_also_finishes_every_run_once_per_step_through_a_kill(fake_llm, start_worker):
    """RUNS_TASK_GRANULARITY=step: each job runs one step and queues the next (docs/performance.md)."""
    fake_llm.control(latency_ms=300)
    victim = start_worker(concurrency=10, RUNS_TASK_GRANULARITY="step")
    survivor = start_worker(concurrency=10, RUNS_TASK_GRANULARITY="step")
    run_ids = start_runs(fake_llm, 20)
    wait_until(lambda: Run.objects.filter(pk__in=run_ids, lease_owner__contains=f":{victim.pid}:").exists(), 30,
               "the first worker never held a step")
    victim.signal(signal.SIGKILL)

    wait_for_final(run_ids, timeout=120)

    assert_every_run_succeeded_once_per_step(run_ids)
    # One job per step: a run's three steps were three jobs (more with the killed one's retry).
    assert jobs_started_by(survivor) >= 20


def test_worker_killed_mid_map_leaves_every_item_committed_once(fake_llm, start_worker):
    """Issue 22, distributed: kill -9 of a worker in the middle of 100-item maps (SCALEOUT_KILLS=20 in the soak)."""
    from tests.flow_checks import assert_every_map_item_committed_once, claims_of, make_map_workflow

    kills = int(os.environ.get("SCALEOUT_KILLS", "3"))
    fake_llm.control(latency_ms=200, log_requests=True)
    workers = [start_worker(concurrency=4), start_worker(concurrency=4)]
    workflow = make_map_workflow(fake_llm.base_url)
    run_ids = [run_start(workflow=workflow, inputs={"claims": claims_of(f"w{i}")}, user=None).pk
               for i in range(2 * kills + 2)]
    rng = random.Random(kills + 22)
    held_mid_map = 0
    for _ in range(kills):
        time.sleep(rng.uniform(0.5, 2.0))
        victim = workers.pop(rng.randrange(len(workers)))
        held = list(Run.objects.filter(pk__in=run_ids, lease_owner__contains=f":{victim.pid}:").values_list("pk", flat=True))
        held_mid_map += any(Response.objects.filter(run_id=pk, index=0, item__gt=0).count() < 100 for pk in held)
        victim.signal(signal.SIGKILL)
        workers.append(start_worker(concurrency=4))
    wait_for_final(run_ids, timeout=240)
    assert held_mid_map, "no kill landed while the worker held a map"
    assert_every_map_item_committed_once(run_ids, fake_llm.requests_logged())
