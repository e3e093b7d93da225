"""Where a queued run goes: the embedded executor in this process, or Procrastinate workers."""
from django.conf import settings


def dispatch(run_id: int) -> None:
    """Start executing a run. Call after commit (the services use transaction.on_commit)."""
    if settings.RUNS_BACKEND == "procrastinate":
        from runs import tasks

        tasks.defer_run(run_id)
        return
    from runs.executor import executor

    executor.submit(run_id)


def cancel(run_id: int) -> None:
    """Signal the holder of a running step. Other processes see the flag at their next heartbeat."""
    if settings.RUNS_BACKEND == "procrastinate":
        # The step runs on a worker machine: its heartbeat (RUNS_HEARTBEAT_SECONDS) reads
        # cancel_requested and stops the call; queued steps are never claimed once it is set.
        return
    from runs.executor import executor

    executor.cancel(run_id)
