"""Group commit for the step ledger.

Every ORM call of async code runs on one database thread. With thousands of runs in flight,
one thread hop and one transaction per claim or commit would queue up behind each other; instead,
the ledger writes that are ready at the same moment run together, each in its own savepoint, in
one transaction and one hop. A write that fails (its savepoint rolls back) fails only its caller.
"""
from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import transaction

T = TypeVar("T")
MAX_BATCH = 500

_Op = tuple[Callable[..., Any], dict[str, Any], "asyncio.Future[Any]"]


def _run_batch(ops: list[tuple[Callable[..., Any], dict[str, Any]]]) -> list[tuple[bool, Any]]:
    outcomes: list[tuple[bool, Any]] = []
    with transaction.atomic():
        for function, kwargs in ops:
            try:
                # Each ledger function opens its own atomic block: a savepoint here.
                outcomes.append((True, function(**kwargs)))
            except Exception as exc:  # noqa: BLE001 - handed to the caller that asked for this write
                outcomes.append((False, exc))
    return outcomes


_run_batch_async = sync_to_async(_run_batch)


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
        try:
            while self.pending:
                batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
                try:
                    outcomes = await _run_batch_async([(f, kw) for f, kw, _ in batch])
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


async def call(function: Callable[..., T], **kwargs: Any) -> T:
    """Run a ledger write on the database thread, batched with others ready at the same time."""
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(loop)
    if batcher is None:
        batcher = _batchers[loop] = Batcher()
    return await batcher.call(function, **kwargs)
