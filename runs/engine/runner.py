"""The step loop: claim a step, call the LLM with no transaction open, commit, repeat.

`execute_run` is the same coroutine in every mode; only how it is dispatched differs.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import socket
import time
import uuid
from typing import Any

from django.conf import settings
from jsonschema import Draft202012Validator

from llm import client as llm
from payloads.services import RenderProblem, arender_messages
from runs.engine import dbthread, events, ledger
from runs.engine.ledger import Claim, Finished, StepResult
from runs.models import ResponseStatus, RunStatus

logger = logging.getLogger(__name__)

# Lease owners must fit Run.lease_owner (100 chars) whatever the host name.
PROCESS_ID = f"{socket.gethostname()[:40]}:{os.getpid()}"


class _CancelSignal:
    """A run's cancel signal in this process: once set, the step running now has its call cancelled."""

    def __init__(self) -> None:
        self.requested = False
        self.call: asyncio.Future[Any] | None = None

    def set(self) -> None:
        self.requested = True
        if self.call is not None:
            self.call.cancel()


# Cancel signals for runs executing in this process.
_cancel_signals: dict[int, _CancelSignal] = {}

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


async def _call(claim: Claim, messages: list[dict[str, str]], deltas: events.StepDeltas | None) -> StepResult:
    """The LLM call(s) of one step, with structured output validated and retried."""
    payload = claim.step["payload"]
    schema = payload.get("json_schema")
    attempts: list[dict[str, Any]] = []
    retries_left = payload.get("structured_retries", 0) if schema else 0
    started = time.perf_counter()
    prompt_tokens = completion_tokens = 0
    while True:
        assert claim.endpoint is not None
        try:
            completion = await llm.complete(
                claim.endpoint, model=payload["model"], messages=messages, params=payload["params"],
                stream=payload["stream"], json_schema=schema,
                on_delta=deltas.add if deltas else None, on_retry=deltas.reset if deltas else None,
            )
        except llm.LLMError as exc:
            return StepResult(
                status=ResponseStatus.FAILED, messages=messages, output=exc.partial_text, error=exc.message,
                attempts=attempts + exc.attempts, latency_ms=round((time.perf_counter() - started) * 1000),
                prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            )
        attempts += completion.attempts
        prompt_tokens += completion.prompt_tokens
        completion_tokens += completion.completion_tokens
        result = StepResult(
            status=ResponseStatus.SUCCEEDED, messages=messages, output=completion.text,
            finish_reason=completion.finish_reason, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            tokens_estimated=completion.tokens_estimated, latency_ms=round((time.perf_counter() - started) * 1000),
            ttft_ms=completion.ttft_ms, attempts=attempts, reasoning=completion.reasoning,
            reasoning_tokens=completion.reasoning_tokens, cached_tokens=completion.cached_tokens,
            learned=(completion.learned, completion.learned_evidence) if completion.learned else None,
        )
        if not schema:
            return result
        problem = _schema_problem(completion.text, schema)
        if problem is None:
            result.output_json = json.loads(completion.text)
            return result
        attempts[-1] = {**attempts[-1], "ok": False, "kind": "invalid_output", "error": problem}
        if retries_left <= 0:
            result.status = ResponseStatus.FAILED
            result.error = f"the answer does not match the JSON schema: {problem}"
            return result
        retries_left -= 1
        if deltas:
            deltas.reset()


def _schema_problem(text: str, schema: dict[str, Any]) -> str | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    error = next(iter(Draft202012Validator(schema).iter_errors(value)), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "the top level"
    return f"at {where}: {error.message}"


async def _run_step(claim: Claim, cancel: _CancelSignal) -> StepResult:
    step = claim.step
    try:
        messages = await arender_messages(step["blocks"], claim.variables)
    except RenderProblem as exc:
        return StepResult(status=ResponseStatus.FAILED, error=str(exc))
    if claim.endpoint is None:
        return StepResult(status=ResponseStatus.FAILED, messages=messages,
                                   error=f"endpoint '{step['payload'].get('endpoint_name')}' is deleted or disabled")
    deltas = events.StepDeltas(claim.run_id, claim.index) if step["payload"]["stream"] else None
    loop = asyncio.get_running_loop()
    call = asyncio.ensure_future(_call(claim, messages, deltas))
    cancel.call = call
    if cancel.requested:
        call.cancel()
    lost_lease = False
    failure: BaseException | None = None
    beating: asyncio.Task[None] | None = None

    async def heartbeat() -> None:
        """Keep the lease and read the cancel flag; only a step slower than the interval sends one."""
        nonlocal lost_lease, failure, timer
        try:
            still_ours, cancel_requested = await dbthread.call(ledger.step_heartbeat, claim=claim)
        except Exception as exc:  # noqa: BLE001 - raised from the step, as the call's own failure would be
            failure = exc
            call.cancel()
            return
        if not still_ours:
            lost_lease = True
            call.cancel()
        elif cancel_requested:
            cancel.set()
        else:
            timer = loop.call_later(settings.RUNS_HEARTBEAT_SECONDS, start_heartbeat)

    def start_heartbeat() -> None:
        nonlocal beating
        beating = loop.create_task(heartbeat())

    # A timer, not a waiting task: a step that ends before the interval costs no heartbeat at all.
    timer = loop.call_later(settings.RUNS_HEARTBEAT_SECONDS, start_heartbeat)
    try:
        result = await call
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # this task was cancelled (shutdown, a worker aborting): the call went with it
        # Cancelling the call closed its HTTP stream; the text streamed so far is kept.
        result = StepResult(status=ResponseStatus.CANCELLED, messages=messages, error="Cancelled by a user.",
                                     output="".join(deltas.streamed) if deltas else "")
    finally:
        cancel.call = None
        timer.cancel()
        if beating is not None and not beating.done():
            beating.cancel()
    if deltas is not None:
        await deltas.close()
    if failure is not None:
        raise failure
    if lost_lease:
        raise _LeaseLost
    return result


class _LeaseLost(Exception):
    """Another worker took this step over; this one's work is dropped."""


async def execute_run(run_id: int, *, owner: str | None = None, max_steps: int | None = None,
                      claim: Claim | Finished | None = None) -> str | None:
    """Run the steps of a run that are still to do. Returns the run's final status if it ended here.

    With max_steps, it stops after that many steps, frees the run and returns "running": the
    caller queues the rest (one task per step, in distributed mode). `claim` is the first step's,
    when run_start_claimed made it for `owner`.
    """
    if isinstance(claim, Claim) and claim.owner != owner:
        raise ValueError("execute_run(claim=...) needs the owner the claim was made for")
    owner = owner or new_owner()
    cancel = _cancel_signals.setdefault(run_id, _CancelSignal())
    steps_done = 0
    try:
        while True:
            if claim is None:
                claim = await dbthread.call(ledger.step_claim, run_id=run_id, owner=owner)
                if claim is None:
                    return None
            if isinstance(claim, Finished):
                await events.arun_finished(run_id, claim.status)
                return claim.status
            if claim.first:
                await events.arun_started(run_id)
            await events.astep_started(claim)
            try:
                result = await _run_step(claim, cancel)
            except _LeaseLost:
                logger.warning("run %s step %s: lease lost, dropping this attempt", run_id, claim.index + 1)
                return None
            outcome, next_claim = await dbthread.call(ledger.step_commit, claim=claim, result=result)
            if outcome is False:
                return None
            await events.astep_finished(claim, result)
            if isinstance(outcome, Finished):
                await events.arun_finished(run_id, outcome.status, result.error)
                return outcome.status
            steps_done += 1
            if max_steps is not None and steps_done >= max_steps:
                if next_claim is not None:
                    await dbthread.call(ledger.step_release, claim=next_claim)
                return RunStatus.RUNNING
            claim = next_claim
    finally:
        if _cancel_signals.get(run_id) is cancel:
            del _cancel_signals[run_id]
