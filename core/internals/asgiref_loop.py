"""The ASGI server's event loop, seen from a sync view that the server runs in a worker thread.

Checked against asgiref 3.13.0: SyncToAsync.run sets `SyncToAsync.threadlocal.main_event_loop` (and
`main_event_loop_pid`) in the thread it runs sync code in; AsyncToSync uses that loop when the pid is
this process's. Nothing public says which loop that is.
"""
from __future__ import annotations

import asyncio
import os

from asgiref.sync import SyncToAsync


def server_event_loop() -> asyncio.AbstractEventLoop | None:
    """The loop of the async code that called this thread through sync_to_async, or None.

    None outside such a thread, and in a forked child (the loop belongs to the parent), as asgiref decides.
    """
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if loop is None or getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) != os.getpid():
        return None
    return loop
