"""Distributed mode: Procrastinate tasks that advance runs on worker machines.

The database is the source of truth for a run's progress; Procrastinate only delivers "advance
run X" at least once. One job runs the whole run (the step ledger inside `execute_run` fences
every step), so a redelivered or duplicated job is harmless: its claim finds the step done or
held by another worker and it returns.

`recover_stalled_work` (every 2 s, on one worker) is what makes crashes recoverable:
- jobs of workers that stopped beating (kill -9, a lost machine) go back to the queue, and the
  leases their runs held are released at once, so the retry need not wait for lease expiry;
- active runs that nobody holds and that have no live job (a drained worker, a web process that
  died between commit and defer) are queued again.

Workers import this module through settings.PROCRASTINATE_IMPORT_PATHS (it is not an app's
`tasks.py`). Task names are fixed strings, not module paths, so jobs queued while it was
runs/tasks.py still run.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection
from procrastinate import JobContext, exceptions
from procrastinate.contrib.django import app
from procrastinate.contrib.django.models import ProcrastinateJob

from core.internals import procrastinate_jobs
from runs import reprice, retention
from runs.engine import ledger, runner

logger = logging.getLogger(__name__)

ADVANCE_TASK = "runs.advance_run"
LIVE_JOB_STATUSES = ("todo", "doing")
# Upper bound of runs re-queued per sweep, so one sweep stays short on a huge backlog.
SWEEP_BATCH = 1000
# Re-take planner statistics this often: a table analysed while near empty makes fetching a job
# far slower (procrastinate #1242; figures in docs/performance.md).
ANALYZE_EVERY_SWEEPS = 150


def queueing_lock(run_id: int) -> str:
    """At most one waiting job per run: deferring again while one waits is a no-op."""
    return f"run-{run_id}"


def owner_prefix(job_id: int) -> str:
    """Lease owners of one job's execution start with this, so a stalled job's leases can be found."""
    return f"worker:job{job_id}:"


@app.task(name=ADVANCE_TASK, pass_context=True)
async def advance_run(context: JobContext, run_id: int) -> str | None:
    """Run the steps of a run still to do, one claimed step at a time."""
    job_id = context.job.id
    assert job_id is not None
    owner = runner.new_owner(owner_prefix(job_id))
    per_step = settings.RUNS_TASK_GRANULARITY == "step"
    try:
        status = await runner.execute_run(run_id, owner=owner, max_steps=1 if per_step else None)
        if status == "running":
            # One job per step: the next step is the next job's.
            await defer_run_async(run_id)
    except asyncio.CancelledError:
        # The worker is draining (SIGTERM past its grace period): free the step at once so
        # another worker resumes the run; the sweep queues it again.
        await asyncio.shield(sync_to_async(ledger.leases_release_dead)(owner_prefix=owner))
        logger.info("run %s: job %s aborted on shutdown, lease released", run_id, job_id)
        raise
    # Tests and operators read this line: None means another worker holds or finished the run.
    logger.info("run %s: job %s by %s ended with %s", run_id, job_id, owner, status)
    return status


def defer_run(run_id: int) -> None:
    """Queue "advance run X" from sync code (after commit)."""
    try:
        advance_run.configure(queueing_lock=queueing_lock(run_id)).defer(run_id=run_id)
    except exceptions.AlreadyEnqueued:
        pass
    except Exception:  # the run is committed: the next sweep (within 2 s) queues it
        logger.warning("run %s: could not queue it now; the recovery sweep will", run_id, exc_info=True)


async def defer_run_async(run_id: int) -> bool:
    try:
        await advance_run.configure(queueing_lock=queueing_lock(run_id)).defer_async(run_id=run_id)
    except exceptions.AlreadyEnqueued:
        return False
    return True


async def defer_runs_async(run_ids: Iterable[int]) -> int:
    """Queue "advance run X" for many runs in one statement, each job with its run's queueing lock.

    One INSERT instead of a round trip per run (an experiment's driver starts up to its concurrency
    per pass). If a run already has a waiting job the whole batch fails and queues nothing, so the
    runs are then queued one by one: every run ends with exactly one waiting job. Returns how many
    jobs were queued.
    """
    unique = list(dict.fromkeys(run_ids))
    try:
        await procrastinate_jobs.jobs_defer_async([
            advance_run.configure(queueing_lock=queueing_lock(run_id), task_kwargs={"run_id": run_id})
            for run_id in unique
        ])
    except exceptions.AlreadyEnqueued:
        return sum([await defer_run_async(run_id) for run_id in unique])
    return len(unique)


def _orphaned_run_ids() -> list[int]:
    """Active runs nobody holds that have no waiting or running job."""
    close_old_connections()
    candidates = ledger.runs_unheld(limit=SWEEP_BATCH)
    if not candidates:
        return []
    live = set(ProcrastinateJob.objects.filter(
        task_name=ADVANCE_TASK, status__in=LIVE_JOB_STATUSES,
        queueing_lock__in=[queueing_lock(pk) for pk in candidates],
    ).values_list("queueing_lock", flat=True))
    return [pk for pk in candidates if queueing_lock(pk) not in live]


def _analyze_jobs_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE procrastinate_jobs")


_sweeps = 0


@app.periodic(cron="23 * * * *")
@app.task(name="runs.prune_old_runs", queueing_lock="runs.prune_old_runs")
async def prune_old_runs(timestamp: int) -> int:
    """Hourly: RUNS_PRUNE_OLDER_THAN_DAYS (0: nothing). One worker at a time (the queueing lock)."""
    report = await sync_to_async(retention.scheduled_prune_in_thread, thread_sensitive=False)()
    return report.runs if report else 0


REPRICE_TASK = "runs.reprice_jobs"


# Every 10 s, and at once when a job is made (runs.reprice._wake): one worker at a time applies
# pending reprice jobs and resumes those whose holder died (its lease ran out).
@app.periodic(cron="* * * * * */10")
@app.task(name=REPRICE_TASK, queueing_lock=REPRICE_TASK)
async def reprice_jobs(timestamp: int | None = None) -> int:
    return await sync_to_async(reprice.reprice_jobs_work, thread_sensitive=False)(owner_prefix="worker:")


def defer_reprice() -> None:
    try:
        reprice_jobs.defer()
    except exceptions.AlreadyEnqueued:
        pass
    except Exception:  # the job is committed: the periodic task picks it up
        logger.warning("could not queue the reprice jobs task now; the periodic one will", exc_info=True)


# The 6th column is seconds: every 2 s.
@app.periodic(cron="* * * * * */2")
@app.task(name="runs.recover_stalled_work", pass_context=True, queueing_lock="runs.recover_stalled_work")
async def recover_stalled_work(context: JobContext, timestamp: int) -> dict[str, Any]:
    global _sweeps
    if _sweeps % ANALYZE_EVERY_SWEEPS == 0:
        await sync_to_async(_analyze_jobs_table)()
    _sweeps += 1
    manager = context.app.job_manager
    retried = 0
    for job in await manager.get_stalled_jobs(seconds_since_heartbeat=settings.RUNS_WORKER_STALLED_SECONDS):
        assert job.id is not None
        if job.task_name == ADVANCE_TASK:
            # Its worker is gone (or paused): its step may be taken over now. If it comes back,
            # the lease version fences its commit out.
            await sync_to_async(ledger.leases_release_dead)(owner_prefix=owner_prefix(job.id))
        await manager.retry_job(job)
        retried += 1
    requeued = 0
    for run_id in await sync_to_async(_orphaned_run_ids)():
        requeued += await defer_run_async(run_id)
    if retried or requeued:
        logger.info("recovery: %s stalled jobs retried, %s runs queued again", retried, requeued)
    return {"retried": retried, "requeued": requeued}
