"""The engine's database thread: group commit for the step ledger, and hand-offs to the loop.

Every ledger write of async code runs on one database thread. With thousands of runs in flight,
one thread hop and one transaction per claim or commit would queue up behind each other; instead,
the ledger writes that are ready at the same moment run together, each in its own savepoint, in
one transaction and one hop. A write that fails (its savepoint rolls back) fails only its caller.

The thread is ours rather than asgiref's: a hop is a queue put and one wake-up of the loop, and
what the batch's commit hooks want done on the loop (events, starting a run) travels back with
the results instead of waking the loop once more.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import connections, transaction

logger = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BATCH = 500

_Op = tuple[Callable[..., Any], dict[str, Any], "asyncio.Future[Any]"]
_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]


def _run_batch(ops: list[tuple[Callable[..., Any], dict[str, Any]]]) -> list[tuple[bool, Any]]:
    if len(ops) == 1:
        # Alone, a write is its own transaction: no savepoint statements around it.
        function, kwargs = ops[0]
        try:
            return [(True, function(**kwargs))]
        except Exception as exc:  # noqa: BLE001 - handed to the caller that asked for this write
            return [(False, exc)]
    outcomes: list[tuple[bool, Any]] = []
    with transaction.atomic():
        for function, kwargs in ops:
            try:
                # Each ledger function opens its own atomic block: a savepoint here.
                outcomes.append((True, function(**kwargs)))
            except Exception as exc:  # noqa: BLE001 - handed to the caller that asked for this write
                outcomes.append((False, exc))
    return outcomes


def _tidy_connections() -> None:
    """What close_old_connections() does for a request, for this long-lived thread.

    A connection that saw an error is checked and dropped if broken (a restarted PostgreSQL);
    one past CONN_MAX_AGE is closed. With CONN_MAX_AGE=0 (SQLite's default here) the healthy
    connection is kept: opening one costs more than a batch.
    """
    for connection in connections.all(initialized_only=True):
        max_age = connection.settings_dict.get("CONN_MAX_AGE")
        expired = bool(max_age) and connection.close_at is not None and time.monotonic() >= connection.close_at
        if connection.errors_occurred or expired:
            connection.close_if_unusable_or_obsolete()


class _DatabaseThread:
    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._started = threading.Lock()
        self._thread: threading.Thread | None = None
        # (loop, callbacks) of the batch running now: commit hooks queue loop work here.
        self._running: tuple[asyncio.AbstractEventLoop, list[Callable[[], Any]]] | None = None

    def submit(self, loop: asyncio.AbstractEventLoop, work: Callable[[], T]) -> asyncio.Future[T]:
        future: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            with self._started:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._work, name="ledger-db", daemon=True)
                    self._thread.start()
        self._jobs.put((loop, future, work))
        return future

    def batch_loop(self) -> asyncio.AbstractEventLoop | None:
        running = self._running
        return running[0] if running is not None and threading.current_thread() is self._thread else None

    def defer_to_loop(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], Any]) -> bool:
        """From a batch on this thread: run `callback` on `loop` when the batch's results arrive."""
        running = self._running
        if threading.current_thread() is not self._thread or running is None or running[0] is not loop:
            return False
        running[1].append(callback)
        return True

    def _work(self) -> None:
        while True:
            loop, future, work = self._jobs.get()
            after: list[Callable[[], Any]] = []
            self._running = (loop, after)
            try:
                outcome: tuple[bool, Any] = (True, work())
            except BaseException as exc:  # noqa: BLE001 - delivered to the awaiting coroutine
                outcome = (False, exc)
            finally:
                self._running = None
            _tidy_connections()
            try:
                loop.call_soon_threadsafe(_deliver, future, outcome, after)
            except RuntimeError:
                pass  # the loop closed while its batch ran: nobody is waiting any more


def _deliver(future: asyncio.Future[Any], outcome: tuple[bool, Any], after: list[Callable[[], Any]]) -> None:
    # Commit hooks first: a run's "queued" event goes out before anything its caller does next.
    for callback in after:
        try:
            callback()
        except Exception:
            logger.exception("a commit hook of a ledger batch failed on the loop")
    if future.cancelled():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


_database = _DatabaseThread()
# A forked child has no database thread (threads do not survive fork): it starts its own.
os.register_at_fork(after_in_child=lambda: _database.__init__())


def batch_loop() -> asyncio.AbstractEventLoop | None:
    """The loop whose batch this thread is running (on the database thread), else None."""
    return _database.batch_loop()


def defer_to_loop(loop: asyncio.AbstractEventLoop, callback: Callable[[], Any]) -> bool:
    """Queue `callback` for `loop` with the current batch's results, if this is the database thread
    running a batch for that loop; False otherwise (the caller wakes the loop itself)."""
    return _database.defer_to_loop(loop, callback)


class _Mailbox:
    """Callbacks for one loop from other threads: one wake-up for all that arrive before it runs."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.callbacks: list[Callable[[], Any]] = []

    def put(self, callback: Callable[[], Any]) -> None:
        with self.lock:
            self.callbacks.append(callback)
            if len(self.callbacks) > 1:
                return  # a wake-up is on its way
        self.loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        with self.lock:
            callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("a callback handed to the loop failed")


_mailboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Mailbox] = weakref.WeakKeyDictionary()
_mailboxes_lock = threading.Lock()


def call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], Any]) -> None:
    """Run `callback` on `loop` soon, from any thread, waking the loop as seldom as possible.

    From a ledger batch it travels with the batch's results; from other threads (a request's)
    callbacks that arrive before the loop gets to them share one wake-up.
    """
    if defer_to_loop(loop, callback):
        return
    mailbox = _mailboxes.get(loop)
    if mailbox is None:
        with _mailboxes_lock:
            mailbox = _mailboxes.setdefault(loop, _Mailbox(loop))
    mailbox.put(callback)


class Batcher:
    def __init__(self) -> None:
        self.pending: list[_Op] = []
        self.draining = False

    async def call(self, function: Callable[..., T], **kwargs: Any) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.pending.append((function, kwargs, future))
        if not self.draining:
            self.draining = True
            asyncio.get_running_loop().create_task(self._drain(), context=contextvars.Context())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.pending:
                batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
                ops = [(f, kw) for f, kw, _ in batch]
                try:
                    outcomes = await _database.submit(loop, lambda ops=ops: _run_batch(ops))
                except Exception as exc:  # noqa: BLE001 - the whole transaction failed: every caller hears it
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, _, future), (ok, value) in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        finally:
            self.draining = False


# A batcher per event loop: tests and CLI commands each run their own loop.
_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Batcher] = weakref.WeakKeyDictionary()
_last: list[Any] = [None, None]  # (loop, batcher) of the last call: a weak lookup makes a weakref each time


async def call(function: Callable[..., T], **kwargs: Any) -> T:
    """Run a ledger write on the database thread, batched with others ready at the same time."""
    loop = asyncio.get_running_loop()
    if _last[0] is not loop:
        _last[:] = [loop, _batchers.setdefault(loop, Batcher())]
    return await _last[1].call(function, **kwargs)


async def close_connections() -> None:
    """Close the database thread's connections (a test's end, before its database goes away)."""
    if _database._thread is not None:
        await _database.submit(asyncio.get_running_loop(), connections.close_all)
