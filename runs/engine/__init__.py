"""The run engine: claims steps, calls the LLM with no transaction open, commits, tells listeners.

What the rest of the project uses:
- `dispatch(run_id)`: start executing a queued run (after commit), in this process or on a worker;
- `run_cancel_signal(run_id)`: after `runs.services.run_cancel` committed, tell the holder of
  the run's step in this process to cancel its call (others see the flag at their heartbeat);
- `execute_run(run_id, ...)`: the step loop, for a caller that executes a run itself;
- `new_owner`, `Claim`, `Finished`; `dbthread.call` runs a ledger write (or a service) on the
  database thread, batched; `events` names the channel groups.

Modules: ledger (every statement on Run and Response), runner (the step loop), dbthread (the
database thread), events (every event payload), executor (embedded mode), tasks (Procrastinate).
The engine never imports runs.services, runs.selectors or views.
"""
from django.conf import settings

from runs.engine.executor import executor
from runs.engine.ledger import Claim, Finished
from runs.engine.runner import execute_run, new_owner

__all__ = ["Claim", "Finished", "dispatch", "execute_run", "new_owner", "run_cancel_signal"]


def dispatch(run_id: int) -> None:
    """Start executing a run. Call after commit (the services use transaction.on_commit)."""
    if settings.RUNS_BACKEND == "procrastinate":
        # Imported here: Procrastinate's Django models exist only when its app is installed (this mode).
        from runs.engine import tasks

        tasks.defer_run(run_id)
        return
    executor.submit(run_id)


def run_cancel_signal(run_id: int) -> None:
    """Signal the holder of a running step. Other processes see the flag at their next heartbeat."""
    if settings.RUNS_BACKEND == "procrastinate":
        # The step runs on a worker machine: its heartbeat (RUNS_HEARTBEAT_SECONDS) reads
        # cancel_requested and stops the call; queued steps are never claimed once it is set.
        return
    executor.cancel_signal(run_id)
