"""One step's call: render its messages, call the LLM with no transaction open (structured output
validated and retried), keep the lease by heartbeats meanwhile, and stop when cancelled.

The chain's step loop (runner) and a flow's units (flow_runner) both run steps through `run_step`.
"""
from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

from django.conf import settings
from jsonschema import Draft202012Validator

from llm import client as llm
from payloads.services import RenderProblem, arender_messages
from runs.engine import cache, dbthread, events, ledger
from runs.engine.ledger import Claim, StepResult
from runs.models import ResponseStatus


class CancelSignal:
    """A run's cancel signal in this process: once set, the step running now has its call cancelled
    (in a flow, every unit in flight: each has a child signal)."""

    def __init__(self) -> None:
        self.requested = False
        self.call: asyncio.Future[Any] | None = None
        self.children: set[CancelSignal] = set()

    def set(self) -> None:
        self.requested = True
        if self.call is not None:
            self.call.cancel()
        for child in list(self.children):
            child.set()

    def child(self) -> CancelSignal:
        signal = CancelSignal()
        signal.requested = self.requested
        self.children.add(signal)
        return signal


# Cancel signals for runs executing in this process.
async def _call(claim: Claim, messages: list[dict[str, str]], deltas: events.StepDeltas | None) -> StepResult:
    """The LLM call(s) of one step, with structured output validated and retried."""
    payload = claim.step["payload"]
    schema = payload.get("json_schema")
    attempts: list[dict[str, Any]] = []
    retries_left = payload.get("structured_retries", 0) if schema else 0
    started = time.perf_counter()
    prompt_tokens = completion_tokens = 0
    # What the server reported the step cost (summed over structured-output retries); None if any call did not say.
    reported: Decimal | None = Decimal(0)
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
        reported = reported + completion.reported_cost if (reported is not None and completion.reported_cost is not None) else None
        result = StepResult(
            status=ResponseStatus.SUCCEEDED, messages=messages, output=completion.text,
            finish_reason=completion.finish_reason, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            tokens_estimated=completion.tokens_estimated, latency_ms=round((time.perf_counter() - started) * 1000),
            ttft_ms=completion.ttft_ms, attempts=attempts, reasoning=completion.reasoning,
            reasoning_tokens=completion.reasoning_tokens, cached_tokens=completion.cached_tokens, reported_cost=reported,
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


async def _messages(claim: Claim) -> list[dict[str, str]] | StepResult:
    """The step's rendered messages, or the failed result that ends it before any call."""
    step = claim.step
    try:
        messages = await arender_messages(step["blocks"], claim.variables)
    except RenderProblem as exc:
        return StepResult(status=ResponseStatus.FAILED, error=str(exc))
    if claim.endpoint is None:
        return StepResult(status=ResponseStatus.FAILED, messages=messages,
                          error=f"endpoint '{step['payload'].get('endpoint_name')}' is deleted or disabled")
    return messages


class _Heartbeat:
    """Keeps the lease and reads the cancel flag while a step's call runs.

    A timer, not a waiting task: a step that ends before the interval costs no heartbeat at all.
    """

    def __init__(self, claim: Claim, cancel: CancelSignal, call: asyncio.Future[StepResult]) -> None:
        self.claim, self.cancel, self.call = claim, cancel, call
        self.loop = asyncio.get_running_loop()
        self.lost_lease = False
        self.failure: BaseException | None = None
        self.beating: asyncio.Task[None] | None = None
        self.timer = self.loop.call_later(settings.RUNS_HEARTBEAT_SECONDS, self._start)

    def _start(self) -> None:
        self.beating = self.loop.create_task(self._beat())

    async def _beat(self) -> None:
        try:
            still_ours, cancel_requested = await dbthread.call(ledger.step_heartbeat, claim=self.claim)
        except Exception as exc:  # noqa: BLE001 - raised from the step, as the call's own failure would be
            self.failure = exc
            self.call.cancel()
            return
        if not still_ours:
            self.lost_lease = True
            self.call.cancel()
        elif cancel_requested:
            self.cancel.set()
        else:
            self.timer = self.loop.call_later(settings.RUNS_HEARTBEAT_SECONDS, self._start)

    def stop(self) -> None:
        self.timer.cancel()
        if self.beating is not None and not self.beating.done():
            self.beating.cancel()

    def raise_if_lost(self) -> None:
        if self.failure is not None:
            raise self.failure
        if self.lost_lease:
            raise LeaseLost


async def run_step(claim: Claim, cancel: CancelSignal) -> StepResult:
    messages = await _messages(claim)
    if isinstance(messages, StepResult):
        return messages
    deltas = events.StepDeltas(claim.run_id, claim.index, claim.item) if claim.step["payload"]["stream"] else None
    call = asyncio.ensure_future(cache.step_call(claim, messages, deltas, _call))
    cancel.call = call
    if cancel.requested:
        call.cancel()
    heartbeat = _Heartbeat(claim, cancel, call)
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
        heartbeat.stop()
    if deltas is not None:
        await deltas.close()
    heartbeat.raise_if_lost()
    return result


class LeaseLost(Exception):
    """Another worker took this step over; this one's work is dropped."""
