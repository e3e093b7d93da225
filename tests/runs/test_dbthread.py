"""The engine's database thread: writes ready together share one transaction, each in its own
savepoint; a failing write fails only its caller; commit hooks ride back with the results."""
import asyncio
import logging
import threading

import pytest
from django.db import IntegrityError, connection, transaction

from runs.engine import dbthread
from runs.models import Response, Run
from tests.factories import make_run

pytestmark = pytest.mark.django_db(transaction=True)


@transaction.atomic
def _new_run(*, name: str) -> tuple[int, int, str]:
    """A write as the ledger's are: its own atomic block. Returns (run id, savepoints open, thread)."""
    run = make_run(workflow_name=name)
    return run.pk, len(connection.savepoint_ids), threading.current_thread().name


@transaction.atomic
def _new_run_then_fail(*, name: str) -> None:
    run = make_run(workflow_name=name)
    Response.objects.create(run=run, index=0, output_key="a", payload_name="p", status="succeeded")
    Response.objects.create(run=run, index=0, output_key="a", payload_name="p", status="succeeded")


async def test_writes_ready_together_share_a_transaction_and_a_failure_fails_only_its_caller() -> None:
    first, failed, third = await asyncio.gather(
        dbthread.call(_new_run, name="first"), dbthread.call(_new_run_then_fail, name="failed"),
        dbthread.call(_new_run, name="third"), return_exceptions=True)
    assert isinstance(failed, IntegrityError)
    # Each ran in a savepoint of the batch's transaction, on the database thread.
    assert first[1:] == third[1:] == (1, "ledger-db")
    names = [name async for name in Run.objects.order_by("pk").values_list("workflow_name", flat=True)]
    assert names == ["first", "third"]  # the failed write's run was rolled back with its savepoint
    assert await Response.objects.acount() == 0


async def test_a_write_alone_is_its_own_transaction_and_its_error_reaches_its_caller() -> None:
    run_id, savepoints, thread = await dbthread.call(_new_run, name="alone")
    assert savepoints == 0 and thread == "ledger-db" and thread != threading.current_thread().name
    with pytest.raises(IntegrityError):
        await dbthread.call(_new_run_then_fail, name="failed")
    assert [pk async for pk in Run.objects.values_list("pk", flat=True)] == [run_id]


async def test_commit_hooks_run_on_the_loop_in_order_before_their_caller_resumes(caplog) -> None:
    loop = asyncio.get_running_loop()
    seen: list[str] = []

    def fail() -> None:
        raise RuntimeError("a broken hook")

    @transaction.atomic
    def write_with_hooks() -> bool:
        make_run(workflow_name="hooked")
        assert dbthread.batch_loop() is loop
        for hook in (lambda: seen.append("queued event"), fail, lambda: seen.append("dispatch")):
            transaction.on_commit(lambda hook=hook: dbthread.call_soon(loop, hook))
        assert seen == []  # nothing has run on the loop yet: the hooks wait for the commit
        return True

    with caplog.at_level(logging.ERROR, logger="runs.engine.dbthread"):
        assert await dbthread.call(write_with_hooks) is True
    assert seen == ["queued event", "dispatch"]
    assert "a commit hook of a ledger batch failed" in caplog.text
    # Outside a batch nothing is deferred: the caller wakes the loop itself.
    assert dbthread.batch_loop() is None and dbthread.defer_to_loop(loop, lambda: None) is False


async def test_callbacks_from_other_threads_run_once_each_in_order_on_the_loop() -> None:
    loop = asyncio.get_running_loop()
    seen: list[tuple[int, bool]] = []
    all_arrived = asyncio.Event()

    def arrive(n: int) -> None:
        seen.append((n, threading.current_thread() is threading.main_thread()))
        if n == 199:
            all_arrived.set()

    def request_thread() -> None:
        for n in range(200):
            dbthread.call_soon(loop, lambda n=n: arrive(n))

    thread = threading.Thread(target=request_thread)
    thread.start()
    await asyncio.wait_for(all_arrived.wait(), 30)  # a guard against hanging, not a timing assertion
    thread.join()
    assert seen == [(n, True) for n in range(200)]
