"""Queueing jobs that each have their own configuration (a queueing lock per job) in one statement.

`Task.batch_defer_async` applies one `configure(...)` to every job of the batch, so jobs that each
need their own queueing lock cannot go through it. It is built from two undocumented pieces, used
here as it uses them:
- `Task.configure(..., task_kwargs=...)` returns a `procrastinate.jobs.JobDeferrer` whose `.job`
  is the `procrastinate.jobs.Job` to insert (configuration and arguments) and whose `.job_manager`
  is the app's `JobManager`;
- `JobManager.batch_defer_jobs_async(jobs)` inserts every job with one call of the SQL function
  `procrastinate_defer_jobs_v1` and returns them with their ids. If a queueing lock is taken (or
  appears twice in the batch) it raises `AlreadyEnqueued` and, the statement failing as a whole,
  inserts none.

Checked against procrastinate 3.10.0. tests/core/internals/test_procrastinate_jobs.py fails if
it changes shape.
"""
from __future__ import annotations

from collections.abc import Sequence

from procrastinate.jobs import JobDeferrer


async def jobs_defer_async(deferrers: Sequence[JobDeferrer]) -> list[int]:
    """Insert the job of each configured deferrer (of one app) in one statement; their ids, in order.

    Raises procrastinate.exceptions.AlreadyEnqueued, having queued none, if any job's queueing lock
    is held by a waiting job or repeated in the batch.
    """
    if not deferrers:
        return []
    manager = deferrers[0].job_manager
    assert all(deferrer.job_manager is manager for deferrer in deferrers), "one app's tasks per batch"
    jobs = await manager.batch_defer_jobs_async(jobs=[deferrer.job for deferrer in deferrers])
    ids: list[int] = []
    for job in jobs:
        assert job.id is not None
        ids.append(job.id)
    return ids
