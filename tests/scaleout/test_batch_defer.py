"""The runs an experiment's driver starts in one pass are queued with one statement on PostgreSQL,
each job with its run's queueing lock; a run that already has a waiting job keeps just that one."""
from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runs.services import run_start
from tests.factories import make_chain, make_endpoint

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def runs_without_a_job(fake_llm, count: int) -> list[int]:
    """Runs as a driver pass leaves them: committed, no job yet (run_start queued one; it is deleted)."""
    from procrastinate.contrib.django import app
    from procrastinate.contrib.django.models import ProcrastinateJob

    from runs.engine import tasks

    workflow = make_chain(make_endpoint(fake_llm.base_url))
    run_ids = [run_start(workflow=workflow, inputs={"topic": f"b{i}"}, user=None).pk for i in range(count)]
    for job_id in ProcrastinateJob.objects.filter(queueing_lock__in=[tasks.queueing_lock(pk) for pk in run_ids],
                                                  status="todo").values_list("id", flat=True):
        assert app.job_manager.cancel_job_by_id(job_id, delete_job=True)
    assert waiting_jobs(run_ids) == {}
    return run_ids


def waiting_jobs(run_ids: list[int]) -> dict[str, list[tuple[int, dict]]]:
    """Waiting advance jobs of these runs by queueing lock: (id, arguments) of each."""
    from procrastinate.contrib.django.models import ProcrastinateJob

    from runs.engine import tasks

    jobs: dict[str, list[tuple[int, dict]]] = {}
    for job_id, lock, args in (ProcrastinateJob.objects
                               .filter(task_name=tasks.ADVANCE_TASK, status="todo",
                                       queueing_lock__in=[tasks.queueing_lock(pk) for pk in run_ids])
                               .order_by("id").values_list("id", "queueing_lock", "args")):
        jobs.setdefault(lock, []).append((job_id, args))
    return jobs


def test_a_batch_of_runs_gets_one_waiting_job_each_with_its_own_queueing_lock_in_one_statement(fake_llm):
    from runs.engine import tasks

    run_ids = runs_without_a_job(fake_llm, 5)

    with CaptureQueriesContext(connection) as queries:
        queued = async_to_sync(tasks.defer_runs_async)(run_ids)

    assert queued == 5
    jobs = waiting_jobs(run_ids)
    assert {lock: [args for _, args in rows] for lock, rows in jobs.items()} == {
        tasks.queueing_lock(pk): [{"run_id": pk}] for pk in run_ids}
    assert len(queries) == 1 and "procrastinate_defer_jobs" in queries[0]["sql"]  # five jobs, one statement


def test_a_run_that_already_has_a_waiting_job_keeps_it_and_the_others_are_still_queued(fake_llm):
    from runs.engine import tasks

    run_ids = runs_without_a_job(fake_llm, 4)
    tasks.defer_run(run_ids[2])
    (already,) = waiting_jobs([run_ids[2]])[tasks.queueing_lock(run_ids[2])]

    queued = async_to_sync(tasks.defer_runs_async)(run_ids)

    assert queued == 3
    jobs = waiting_jobs(run_ids)
    assert {lock: len(rows) for lock, rows in jobs.items()} == {tasks.queueing_lock(pk): 1 for pk in run_ids}
    assert jobs[tasks.queueing_lock(run_ids[2])] == [already]  # the job it had, not a second one


def test_the_same_run_twice_in_a_batch_gets_one_job(fake_llm):
    from runs.engine import tasks

    run_ids = runs_without_a_job(fake_llm, 2)

    assert async_to_sync(tasks.defer_runs_async)([run_ids[0], run_ids[1], run_ids[0]]) == 2
    assert {lock: len(rows) for lock, rows in waiting_jobs(run_ids).items()} == {
        tasks.queueing_lock(pk): 1 for pk in run_ids}
