"""The embedded executor: runs execute as asyncio tasks inside the daphne process.

It wakes at once when a run is submitted, caps concurrency with a semaphore, and on start-up and
every few seconds picks up runs nobody holds (queued before start, or left by a dead process).
Apps above runs add companions (experiments' driver, evaluations' scoring): tasks started and
stopped with it, registered at start-up, so the engine imports none of them.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from core import collector
from llm import client as llm_client
from runs import reprice, retention
from runs.engine import dbthread, events, ledger, runner
from runs.engine.flow import FlowClaim
from runs.engine.ledger import Claim, Finished

logger = logging.getLogger(__name__)

# Long-lived tasks other apps run beside the executor (experiments' driver): each is a coroutine
# function started with the executor and cancelled when it stops. Registered at app start-up.
_companions: list[Callable[[], Coroutine[Any, Any, None]]] = []


def add_companion(factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
    if factory not in _companions:
        _companions.append(factory)

SWEEP_SECONDS = 5.0
PRUNE_SECONDS = 3600.0
# Leases of this embedded server carry this prefix; only one embedded server runs per database.
OWNER_PREFIX = "embedded:"


def _runnable_ids() -> list[int]:
    close_old_connections()
    return ledger.runs_unheld(limit=10000)


class Executor:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tasks: dict[int, asyncio.Task[str | None]] = {}
        self.semaphore: asyncio.Semaphore | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._repricer: asyncio.Task[int] | None = None
        self._companions: list[asyncio.Task[None]] = []

    @property
    def running(self) -> bool:
        return self.loop is not None and not self.loop.is_closed()

    def start(self, *, recover: bool = True) -> None:
        """Start on the running loop."""
        self.loop = asyncio.get_running_loop()
        self.semaphore = asyncio.Semaphore(settings.RUNS_MAX_CONCURRENCY)
        if recover:
            self._sweeper = self.loop.create_task(self._sweep_forever(), context=contextvars.Context())

    async def stop(self) -> None:
        """Stop at shutdown. Runs in flight keep their leases' steps uncommitted: they resume on start."""
        if self._sweeper:
            self._sweeper.cancel()
        if self._repricer:
            self._repricer.cancel()
        for companion in self._companions:
            companion.cancel()
        await asyncio.gather(*self._companions, return_exceptions=True)
        self._companions = []
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        await llm_client.aclose_all()
        self.loop = None

    def submit(self, run_id: int) -> bool:
        """Start executing a run soon. Safe to call from any thread."""
        if not self.running:
            return False
        assert self.loop is not None
        try:
            on_loop = asyncio.get_running_loop() is self.loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._spawn(run_id)
        else:
            dbthread.call_soon(self.loop, lambda: self._spawn(run_id))
        return True

    def cancel_signal(self, run_id: int) -> None:
        """Hand a run's cancel signal to the loop its step runs on. Safe to call from any thread."""
        if self.running:
            assert self.loop is not None
            dbthread.call_soon(self.loop, lambda: runner.cancel_signal_deliver(run_id))

    def _spawn(self, run_id: int, claim: Claim | Finished | FlowClaim | None = None,
               gate: asyncio.Semaphore | None = None) -> asyncio.Task[str | None]:
        task = self.tasks.get(run_id)
        if task is not None:
            return task
        # A fresh context: a run must never inherit the context of the request that started it.
        task = asyncio.get_running_loop().create_task(self._execute(run_id, claim, gate), context=contextvars.Context())
        self.tasks[run_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(run_id, None))
        return task

    def execute(self, run_id: int, claim: Claim | Finished | FlowClaim | None = None,
                gate: asyncio.Semaphore | None = None) -> asyncio.Task[str | None]:
        """Execute a run now, on this loop (the executor's), or the task already executing it: a
        caller on the loop (experiments' driver) waits on it or adds a done callback. `claim`: its
        first step's, when the caller claimed it (ledger.claim_inserted). `gate`: the caller's own cap
        (an experiment's concurrency), taken before the executor's."""
        return self._spawn(run_id, claim, gate)

    async def _execute(self, run_id: int, claim: Claim | Finished | FlowClaim | None = None,
                       gate: asyncio.Semaphore | None = None) -> str | None:
        if gate is None:
            return await self._execute_capped(run_id, claim)
        async with gate:
            return await self._execute_capped(run_id, claim)

    async def _execute_capped(self, run_id: int, claim: Claim | Finished | FlowClaim | None) -> str | None:
        assert self.semaphore is not None
        async with self.semaphore:
            try:
                owner = claim.owner if isinstance(claim, Claim | FlowClaim) else runner.new_owner(OWNER_PREFIX)
                return await runner.execute_run(run_id, owner=owner, claim=claim)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("run %s: the executor failed; it will be picked up again", run_id)
                return None

    async def _sweep_forever(self) -> None:
        await sync_to_async(ledger.leases_release_dead)(owner_prefix=OWNER_PREFIX)
        # Companions only now: the release above frees every lease of this server's prefix, so a lease one
        # of them took meanwhile (the experiments' driver claims its cells' runs as it inserts them) would
        # be freed under it, and its step called twice.
        assert self.loop is not None
        self._companions = [self.loop.create_task(factory(), context=contextvars.Context()) for factory in _companions]
        pruned_at = asyncio.get_running_loop().time()
        while True:
            try:
                for run_id in await sync_to_async(_runnable_ids)():
                    self._spawn(run_id)
            except Exception:
                logger.exception("sweeping for runnable runs failed")
            self._reprice_soon()
            if asyncio.get_running_loop().time() - pruned_at >= PRUNE_SECONDS:
                pruned_at = asyncio.get_running_loop().time()
                try:  # in a thread of its own: batches wait for the write lock like any writer
                    await sync_to_async(retention.scheduled_prune_in_thread, thread_sensitive=False)()
                except Exception:
                    logger.exception("pruning old runs failed")
            await asyncio.sleep(SWEEP_SECONDS)

    def _reprice_soon(self) -> None:
        """Pending reprice jobs (and those whose holder died) run beside the sweep, one pass at a time."""
        if self._repricer is not None and not self._repricer.done():
            return
        # In a thread of its own: its batches wait for the write lock like any writer.
        work = sync_to_async(reprice.reprice_jobs_work, thread_sensitive=False)
        self._repricer = asyncio.get_running_loop().create_task(work(owner_prefix=OWNER_PREFIX),
                                                                context=contextvars.Context())
        self._repricer.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[int]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("reprice jobs failed", exc_info=task.exception())


executor = Executor()


def start_with_reactor() -> None:
    """Start the executor once daphne's Twisted reactor (an asyncio loop) is running.

    Daphne has no ASGI lifespan, and while asgi.py is imported the loop is not yet running, so a
    task scheduled then never runs.
    """
    if "twisted.internet.reactor" not in sys.modules or threading.current_thread() is not threading.main_thread():
        return
    # Imported here: importing the reactor installs one, which only daphne may choose.
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    def _start() -> None:
        events.use_loop(asyncio.get_running_loop())
        collector.tune()  # start-up is over: what it made lives as long as the server
        if settings.RUNS_BACKEND == "embedded":
            executor.start()
            logger.info("embedded run executor started")

    # Start-up triggers fire before the asyncio loop runs; callLater(0) runs inside it.
    reactor.callWhenRunning(reactor.callLater, 0, _start)  # type: ignore[attr-defined]
    # Close pooled LLM connections and stop run tasks before the loop goes away.
    reactor.addSystemEventTrigger(  # type: ignore[attr-defined]
        "before", "shutdown", lambda: Deferred.fromFuture(asyncio.ensure_future(executor.stop())))
