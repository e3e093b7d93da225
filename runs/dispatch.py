"""Where a queued run goes: the embedded executor in this process, or Procrastinate workers."""
from django.conf import settings


def dispatch(run_id: int) -> None:
    if settings.RUNS_BACKEND == "procrastinate":
        from runs import tasks

        tasks.defer_run(run_id)
        return
    from runs.executor import executor

    executor.submit(run_id)


def cancel(run_id: int) -> None:
    """Signal the holder of a running step. Other processes see the flag at their next heartbeat."""
    from runs.executor import executor

    executor.cancel(run_id)
