"""The only place that names channel groups, builds run and step events and sends them.

Groups: `run-<id>` gets every event of one run; `runs` gets status changes of all runs. Events
are sent after the write they describe has committed. In-process listeners (the CLI) can
subscribe to a run without a channel layer round trip. Each event's fields are those of
docs/events.md; the functions named after an event build it (`a...`: awaitable, on the loop).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from core.internals.asgiref_loop import server_event_loop
from runs.engine import dbthread
from runs.engine.ledger import Claim, StepResult
from runs.models import ResponseStatus, RunStatus

logger = logging.getLogger(__name__)

RUNS_GROUP = "runs"
Listener = Callable[[dict[str, Any]], None]
_listeners: dict[int, list[Listener]] = defaultdict(list)
_pending: set[asyncio.Future[None]] = set()

# Observers of this process's runs and steps, registered at start-up by the apps that watch them
# (observability/: metrics and traces). Each is called once the event's write has committed and
# must be quick; one that raises is logged and never fails a run.
run_started_observers: list[Callable[[int], None]] = []
step_finished_observers: list[Callable[[Claim, StepResult], None]] = []
run_finished_observers: list[Callable[[int, str], None]] = []


def _observe(observers: list[Callable[..., None]], *args: Any) -> None:
    for observer in observers:
        try:
            observer(*args)
        except Exception:
            logger.warning("observer %r failed", observer, exc_info=True)


def run_group(run_id: int) -> str:
    return f"run-{run_id}"


def subscribe(run_id: int, listener: Listener) -> Callable[[], None]:
    _listeners[run_id].append(listener)

    def unsubscribe() -> None:
        _listeners[run_id].remove(listener)
        if not _listeners[run_id]:
            del _listeners[run_id]

    return unsubscribe


# The channel-layer message type of every event: consumers handle it in `run_event`.
GROUP_MESSAGE_TYPE = "run.event"


def _message(run_id: int, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": GROUP_MESSAGE_TYPE, "event": {"type": kind, "run_id": run_id, **data}}


async def send(run_id: int, kind: str, data: dict[str, Any] | None = None, *, to_list: bool = False) -> None:
    """Send one event to the run's group (and the list group for status changes)."""
    message = _message(run_id, kind, data or {})
    for listener in list(_listeners.get(run_id, ())):
        listener(message["event"])
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        for group in (run_group(run_id), RUNS_GROUP) if to_list else (run_group(run_id),):
            # The in-memory layer lives in this process: a group nobody joined needs no send.
            if isinstance(layer, InMemoryChannelLayer) and not layer.groups.get(group):
                continue
            await layer.group_send(group, message)
    except Exception:
        logger.warning("could not send %s for run %s", kind, run_id, exc_info=True)


# The server's event loop (daphne's), once it runs: sync code hands events to it without waiting.
_server_loop: asyncio.AbstractEventLoop | None = None


def use_loop(loop: asyncio.AbstractEventLoop) -> None:
    global _server_loop
    _server_loop = loop


def _send_soon(run_id: int, kind: str, data: dict[str, Any] | None, to_list: bool) -> None:
    """On the loop: send without waiting (the task is kept alive until it is done)."""
    task = asyncio.ensure_future(send(run_id, kind, data, to_list=to_list))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


def send_sync(run_id: int, kind: str, data: dict[str, Any] | None = None, *, to_list: bool = False) -> None:
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None:
        # Called from sync code inside a running loop (rare): schedule instead of blocking it.
        _send_soon(run_id, kind, data, to_list)
        return
    # The loop this thread works for: the ledger batch's, the server's, or the one whose
    # sync_to_async call runs this code (asgiref keeps it on the thread).
    loop = dbthread.batch_loop() or _server_loop or server_event_loop()
    if loop is None or not loop.is_running():
        async_to_sync(send)(run_id, kind, data, to_list=to_list)
        return
    # Queue the send on that loop instead of blocking this thread (and the database work behind it).
    dbthread.call_soon(loop, lambda: _send_soon(run_id, kind, data, to_list))


# --- run events (to the run's group and the list) -----------------------------------------------
def run_status(run_id: int, status: str) -> None:
    """`run.status`: queued on start, cancelling when a held run is asked to stop (from sync code)."""
    send_sync(run_id, "run.status", {"status": status}, to_list=True)


FINISHED_EVENT = {RunStatus.SUCCEEDED: "run.completed", RunStatus.FAILED: "run.failed",
                  RunStatus.CANCELLED: "run.cancelled", RunStatus.BUDGET_REACHED: "run.budget_reached"}


def _finished_data(status: str, error: str) -> dict[str, Any]:
    """A failure or a budget stop says why; a cancellation's message is the run's `error` in the API, not in the event."""
    return {"status": status, "error": error} if status in (RunStatus.FAILED, RunStatus.BUDGET_REACHED) else {"status": status}


def run_finished(run_id: int, status: str, error: str = "") -> None:
    """`run.completed`, `run.failed` or `run.cancelled`, from sync code."""
    _observe(run_finished_observers, run_id, status)
    send_sync(run_id, FINISHED_EVENT[status], _finished_data(status, error), to_list=True)


def arun_finished(run_id: int, status: str, error: str = "") -> Coroutine[Any, Any, None]:
    """`run.completed`, `run.failed` or `run.cancelled`, on the loop."""
    _observe(run_finished_observers, run_id, status)
    return send(run_id, FINISHED_EVENT[status], _finished_data(status, error), to_list=True)


def arun_started(run_id: int) -> Coroutine[Any, Any, None]:
    """`run.started`: the first step is claimed."""
    _observe(run_started_observers, run_id)
    return send(run_id, "run.started", {"status": RunStatus.RUNNING}, to_list=True)


# --- step events (to the run's group only) ------------------------------------------------------
def _item(claim: Claim, data: dict[str, Any]) -> dict[str, Any]:
    """A map item's events name the item (its number, from 1, and the map's size); a step's do not."""
    if claim.item:
        data.update(item=claim.item, item_count=claim.item_count)
    elif claim.item_count:
        data["items"] = claim.item_count
    return data


def astep_started(claim: Claim) -> Coroutine[Any, Any, None]:
    data = {"index": claim.index, "output_key": claim.step["output_key"],
            "payload": claim.step["payload"]["name"], "step_count": claim.step_count}
    if claim.item:
        data["item_value"] = claim.item_value
    return send(claim.run_id, "step.started", _item(claim, data))


def astep_skipped(claim: Claim, result: StepResult) -> Coroutine[Any, Any, None]:
    """`step.skipped`: its `when` was false; its output is the step's default."""
    _observe(step_finished_observers, claim, result)
    return send(claim.run_id, "step.skipped", {"index": claim.index, "output_key": claim.step["output_key"],
                                               "status": result.status, "output": result.output})


def astep_finished(claim: Claim, result: StepResult) -> Coroutine[Any, Any, None]:
    """`step.completed`, or `step.failed` with its `error`; the optional fields only when reported."""
    _observe(step_finished_observers, claim, result)
    data: dict[str, Any] = {
        "index": claim.index, "output_key": claim.step["output_key"], "status": result.status,
        "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
        "tokens_estimated": result.tokens_estimated, "latency_ms": result.latency_ms, "ttft_ms": result.ttft_ms,
        "attempts": len(result.attempts), "output": result.output,
    }
    if result.reasoning:
        data["reasoning"] = result.reasoning
    if result.reasoning_tokens is not None:
        data["reasoning_tokens"] = result.reasoning_tokens
    if result.cached_tokens is not None:
        data["cached_tokens"] = result.cached_tokens
    if claim.item or claim.item_count:
        _item(claim, data)
    if result.cache:
        data.update((name, value) for name, value in result.cache.items() if name != "cache_stored_at")
    if result.status == ResponseStatus.SUCCEEDED:
        return send(claim.run_id, "step.completed", data)
    data["error"] = result.error
    return send(claim.run_id, "step.failed", data)


# Streamed text is sent at most this often per step.
DELTA_INTERVAL_SECONDS = 0.05
# This often a delta carries the whole text so far, so a client that joined mid-stream catches up.
FULL_TEXT_INTERVAL_SECONDS = 1.0


class StepDeltas:
    """Coalesces a step's streamed text into `step.delta` events: one per interval, carrying its
    offset in the text, or now and then the full text so far (offset 0, "full": true)."""

    def __init__(self, run_id: int, index: int, item: int = 0) -> None:
        self.run_id = run_id
        self.index = index
        self.item = item  # a map item's deltas name it
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
        if self.item:
            data["item"] = self.item
        task = asyncio.ensure_future(send(self.run_id, "step.delta", data))
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
            await send(self.run_id, "step.delta", data)
