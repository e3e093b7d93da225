"""server_event_loop() is the loop of the async caller, in a thread that sync_to_async runs."""
import asyncio
import os
import threading

from asgiref.sync import SyncToAsync, sync_to_async

from core.internals.asgiref_loop import server_event_loop


async def test_in_a_sync_to_async_thread_it_is_the_callers_loop() -> None:
    running = asyncio.get_running_loop()
    # The internal itself: if these fail, asgiref changed where it keeps the loop.
    seen = await sync_to_async(lambda: (SyncToAsync.threadlocal.main_event_loop,
                                        SyncToAsync.threadlocal.main_event_loop_pid))()
    assert seen == (running, os.getpid())
    assert await sync_to_async(server_event_loop)() is running
    assert await sync_to_async(server_event_loop, thread_sensitive=False)() is running


def test_in_a_plain_thread_there_is_none() -> None:
    found: list[object] = []
    thread = threading.Thread(target=lambda: found.append(server_event_loop()))
    thread.start()
    thread.join()
    assert found == [None]
