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
from typing import TYPE_CHECKING, Any

from django.conf import settings
from jsonschema import Draft202012Validator

from llm import client as llm
from payloads.services import RenderProblem, arender_messages
from runs import batching, events, services
from runs.models import ResponseStatus, RunStatus

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from runs.models import Run
    from workflows.models import Workflow

logger = logging.getLogger(__name__)

# Streamed text is sent at most this often per step (about 20 messages a second).
DELTA_INTERVAL_SECONDS = 0.05
# This often a delta carries the whole text so far, so a client that joined mid-stream catches up.
FULL_TEXT_INTERVAL_SECONDS = 1.0
# Lease owners must fit Run.lease_owner (100 chars) whatever the host name.
PROCESS_ID = f"{socket.gethostname()[:40]}:{os.getpid()}"


class _Cancel:
    """A run's cancel signal in this process: once set, the step running now has its call cancelled."""

    def __init__(self) -> None:
        self.requested = False
        self.call: asyncio.Future[Any] | None = None

    def set(self) -> None:
        self.requested = True
        if self.call is not None:
            self.call.cancel()


# Cancel signals for runs executing in this process.
_cancels: dict[int, _Cancel] = {}

# Unique per execution: this process's random tag and a counter (no uuid4 syscall per run).
_PROCESS_TAG = uuid.uuid4().hex[:8]
_executions = itertools.count(1)


def new_owner(prefix: str = "") -> str:
    return f"{prefix}{PROCESS_ID}:{_PROCESS_TAG}.{next(_executions)}"


async def start_run(*, workflow: Workflow, inputs: dict[str, Any], user: AbstractBaseUser | None = None) -> Run:
    """services.run_start for async code: on the ledger's database thread, batched with its writes."""
    return await batching.call(services.run_start, workflow=workflow, inputs=inputs, user=user)


async def start_claimed_run(*, workflow: Workflow, inputs: dict[str, Any], user: AbstractBaseUser | None = None,
                            owner: str) -> tuple[Run, services.Claim | services.Finished | None]:
    """For a caller that executes the run itself: its first step is claimed for `owner` in the
    start's transaction (one transaction and one hop fewer); pass both to execute_run."""
    return await batching.call(services.run_start_claimed, workflow=workflow, inputs=inputs, user=user, owner=owner)


def request_cancel(run_id: int) -> bool:
    """Cancel the step this process is running for the run, if any. Call on the run's loop."""
    cancel = _cancels.get(run_id)
    if cancel is None:
        return False
    cancel.set()
    return True


class _Deltas:
    """Coalesces streamed text: one step.delta per interval, carrying its offset in the text.

    About once a second a delta carries the full text so far instead (offset 0, "full": true).
    """

    def __init__(self, run_id: int, index: int) -> None:
        self.run_id = run_id
        self.index = index
        self.sent = 0
        self.pending: list[str] = []
        self.streamed: list[str] = []
        self.timer: asyncio.TimerHandle | None = None
        self.last_full = time.monotonic()
        self.tasks: set[asyncio.Task[None]] = set()

    def add(self, text: str) -> None:
        self.pending.append(text)
        self.streamed.append(text)
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(DELTA_INTERVAL_SECONDS, self._flush_later)

    def reset(self) -> None:
        """A retried attempt starts its text again."""
        self.pending.clear()
        self.streamed.clear()
        self.sent = 0
        self._send({"index": self.index, "offset": 0, "text": "", "reset": True})

    def _send(self, data: dict[str, Any]) -> None:
        task = asyncio.ensure_future(events.send(self.run_id, "step.delta", data))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _take(self) -> dict[str, Any] | None:
        self.timer = None
        if not self.pending:
            return None
        text = "".join(self.pending)
        self.pending.clear()
        data: dict[str, Any] = {"index": self.index, "offset": self.sent, "text": text}
        self.sent += len(text)
        now = time.monotonic()
        if now - self.last_full >= FULL_TEXT_INTERVAL_SECONDS:
            self.last_full = now
            data = {"index": self.index, "offset": 0, "text": "".join(self.streamed), "full": True}
        return data

    def _flush_later(self) -> None:
        data = self._take()
        if data:
            self._send(data)

    async def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        data = self._take()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if data:
            await events.send(self.run_id, "step.delta", data)


async def _call(claim: services.Claim, messages: list[dict[str, str]], deltas: _Deltas | None) -> services.StepResult:
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
            return services.StepResult(
                status=ResponseStatus.FAILED, messages=messages, output=exc.partial_text, error=exc.message,
                attempts=attempts + exc.attempts, latency_ms=round((time.perf_counter() - started) * 1000),
                prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            )
        attempts += completion.attempts
        prompt_tokens += completion.prompt_tokens
        completion_tokens += completion.completion_tokens
        result = services.StepResult(
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


async def _run_step(claim: services.Claim, cancel: _Cancel) -> services.StepResult:
    step = claim.step
    try:
        messages = await arender_messages(step["blocks"], claim.variables)
    except RenderProblem as exc:
        return services.StepResult(status=ResponseStatus.FAILED, error=str(exc))
    if claim.endpoint is None:
        return services.StepResult(status=ResponseStatus.FAILED, messages=messages,
                                   error=f"endpoint '{step['payload'].get('endpoint_name')}' is deleted or disabled")
    deltas = _Deltas(claim.run_id, claim.index) if step["payload"]["stream"] else None
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
            still_ours, cancel_requested = await batching.call(services.step_heartbeat, claim=claim)
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
        result = services.StepResult(status=ResponseStatus.CANCELLED, messages=messages, error="Cancelled by a user.",
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
                      claim: services.Claim | services.Finished | None = None) -> str | None:
    """Run the steps of a run that are still to do. Returns the run's final status if it ended here.

    With max_steps, it stops after that many steps, frees the run and returns "running": the
    caller queues the rest (one task per step, in distributed mode). `claim` is the first step's,
    when start_claimed_run made it for `owner`.
    """
    if isinstance(claim, services.Claim) and claim.owner != owner:
        raise ValueError("execute_run(claim=...) needs the owner the claim was made for")
    owner = owner or new_owner()
    cancel = _cancels.setdefault(run_id, _Cancel())
    steps_done = 0
    try:
        while True:
            if claim is None:
                claim = await batching.call(services.step_claim, run_id=run_id, owner=owner)
                if claim is None:
                    return None
            if isinstance(claim, services.Finished):
                await events.send(run_id, events.FINISHED_EVENT[claim.status], {"status": claim.status}, to_list=True)
                return claim.status
            if claim.first:
                await events.send(run_id, "run.started", {"status": RunStatus.RUNNING}, to_list=True)
            await events.send(run_id, "step.started", {
                "index": claim.index, "output_key": claim.step["output_key"],
                "payload": claim.step["payload"]["name"], "step_count": claim.step_count})
            try:
                result = await _run_step(claim, cancel)
            except _LeaseLost:
                logger.warning("run %s step %s: lease lost, dropping this attempt", run_id, claim.index + 1)
                return None
            outcome, next_claim = await batching.call(services.step_commit, claim=claim, result=result)
            if outcome is False:
                return None
            await _announce(claim, result)
            if isinstance(outcome, services.Finished):
                await events.send(run_id, events.FINISHED_EVENT[outcome.status],
                                  events.finished_data(outcome.status, result.error), to_list=True)
                return outcome.status
            steps_done += 1
            if max_steps is not None and steps_done >= max_steps:
                if next_claim is not None:
                    await batching.call(services.step_release, claim=next_claim)
                return RunStatus.RUNNING
            claim = next_claim
    finally:
        if _cancels.get(run_id) is cancel:
            del _cancels[run_id]


async def _announce(claim: services.Claim, result: services.StepResult) -> None:
    data: dict[str, Any] = {
        "index": claim.index, "output_key": claim.step["output_key"], "status": result.status,
        "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
        "tokens_estimated": result.tokens_estimated, "latency_ms": result.latency_ms, "ttft_ms": result.ttft_ms,
        "attempts": len(result.attempts), "output": result.output,
    }
    if result.reasoning:
        data["reasoning"] = result.reasoning
    for name in ("reasoning_tokens", "cached_tokens"):
        if getattr(result, name) is not None:
            data[name] = getattr(result, name)
    if result.status == ResponseStatus.SUCCEEDED:
        await events.send(claim.run_id, "step.completed", data)
    else:
        await events.send(claim.run_id, "step.failed", {**data, "error": result.error})
