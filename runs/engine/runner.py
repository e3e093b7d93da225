"""The step loop: claim a step, call the LLM with no transaction open (runs.engine.step), commit, repeat.

`execute_run` is the same coroutine in every mode; only how it is dispatched differs.
"""
from __future__ import annotations

import itertools
import logging
import os
import socket
import uuid

from runs.engine import dbthread, events, flow_runner, ledger
from runs.engine.flow import FlowClaim
from runs.engine.ledger import Claim, Finished
from runs.engine.step import CancelSignal, LeaseLost, run_step
from runs.models import RunStatus

logger = logging.getLogger(__name__)

# Lease owners must fit Run.lease_owner (100 chars) whatever the host name.
PROCESS_ID = f"{socket.gethostname()[:40]}:{os.getpid()}"

# Cancel signals for runs executing in this process.
_cancel_signals: dict[int, CancelSignal] = {}

# Unique per execution: this process's random tag and a counter (no uuid4 syscall per run).
_PROCESS_TAG = uuid.uuid4().hex[:8]
_executions = itertools.count(1)


def new_owner(prefix: str = "") -> str:
    return f"{prefix}{PROCESS_ID}:{_PROCESS_TAG}.{next(_executions)}"


def cancel_signal_deliver(run_id: int) -> bool:
    """Cancel the step this process is running for the run, if any. Call on the run's loop."""
    signal = _cancel_signals.get(run_id)
    if signal is None:
        return False
    signal.set()
    return True


async def execute_run(run_id: int, *, owner: str | None = None, max_steps: int | None = None,
                      claim: Claim | Finished | FlowClaim | None = None) -> str | None:
    """Run the steps of a run that are still to do. Returns the run's final status if it ended here.

    With max_steps, it stops after that many steps, frees the run and returns "running": the
    caller queues the rest (one task per step, in distributed mode). `claim` is the first step's,
    when run_start_claimed made it for `owner`.
    """
    if isinstance(claim, Claim | FlowClaim) and claim.owner != owner:
        raise ValueError("execute_run(claim=...) needs the owner the claim was made for")
    owner = owner or new_owner()
    cancel = _cancel_signals.setdefault(run_id, CancelSignal())
    steps_done = 0
    try:
        while True:
            if claim is None:
                claim = await dbthread.call(ledger.step_claim, run_id=run_id, owner=owner)
                if claim is None:
                    return None
            if not isinstance(claim, Claim):
                return await _not_a_step(claim, cancel)
            ended, next_claim = await _step(claim, cancel)
            if ended is not _GOES_ON:
                return ended
            steps_done += 1
            if max_steps is not None and steps_done >= max_steps:
                if next_claim is not None:
                    await dbthread.call(ledger.step_release, claim=next_claim)
                return RunStatus.RUNNING
            claim = next_claim
    finally:
        if _cancel_signals.get(run_id) is cancel:
            del _cancel_signals[run_id]


async def _not_a_step(claim: Finished | FlowClaim, cancel: CancelSignal) -> str | None:
    """A claim that is not one step of a chain: the run ended as it was claimed, or it is a flow,
    which runs whole in this task (its units side by side; max_steps does not split it)."""
    if isinstance(claim, Finished):
        await events.arun_finished(claim.run_id, claim.status, claim.error)
        return claim.status
    return await flow_runner.execute_flow(claim, cancel)


_GOES_ON = "goes on"  # _step's answer when the run has more steps for this worker


async def _step(claim: Claim, cancel: CancelSignal) -> tuple[str | None, Claim | None]:
    """Run and commit one claimed step: (the run's final status, or None if this worker lost it,
    or _GOES_ON with the next step's claim)."""
    if claim.first:
        await events.arun_started(claim.run_id)
    await events.astep_started(claim)
    try:
        result = await run_step(claim, cancel)
    except LeaseLost:
        logger.warning("run %s step %s: lease lost, dropping this attempt", claim.run_id, claim.index + 1)
        return None, None
    outcome, next_claim = await dbthread.call(ledger.step_commit, claim=claim, result=result)
    if outcome is False:
        return None, None
    await events.astep_finished(claim, result)
    if isinstance(outcome, Finished):
        await events.arun_finished(claim.run_id, outcome.status, outcome.error or result.error)
        return outcome.status, None
    return _GOES_ON, next_claim
