"""The only place that names channel groups and sends run events.

Groups: `run-<id>` gets every event of one run; `runs` gets status changes of all runs. Events
are sent after the write they describe has committed. In-process listeners (the CLI) can
subscribe to a run without a channel layer round trip.
"""
from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from runs import batching

logger = logging.getLogger(__name__)

RUNS_GROUP = "runs"
Listener = Callable[[dict[str, Any]], None]
_listeners: dict[int, list[Listener]] = defaultdict(list)
_pending: set[asyncio.Future[None]] = set()


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
    loop = batching.batch_loop() or _server_loop or getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if loop is None or not loop.is_running():
        async_to_sync(send)(run_id, kind, data, to_list=to_list)
        return
    # Queue the send on that loop instead of blocking this thread (and the database work behind it).
    batching.call_soon(loop, lambda: _send_soon(run_id, kind, data, to_list))


def run_status(run_id: int, status: str) -> None:
    send_sync(run_id, "run.status", {"status": status}, to_list=True)


FINISHED_EVENT = {"succeeded": "run.completed", "failed": "run.failed", "cancelled": "run.cancelled"}


def finished_data(status: str, error: str = "") -> dict[str, Any]:
    """A final event's fields: a failure says why; a cancellation's message is the run's `error` in the API."""
    return {"status": status, "error": error} if status == "failed" else {"status": status}


def run_finished(run_id: int, status: str) -> None:
    send_sync(run_id, FINISHED_EVENT[status], {"status": status}, to_list=True)
