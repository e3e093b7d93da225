"""The embedded executor's start: leases of this server's dead predecessor are freed before any companion
(the experiments' driver) runs, so a lease a companion takes is never freed under it."""
import asyncio
import datetime
import sqlite3

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from runs.engine.executor import OWNER_PREFIX, Executor, _companions, add_companion
from runs.models import Run, RunStatus
from tests.factories import make_chain, make_endpoint, make_run

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.skipif("sqlite" not in settings.DATABASES["default"]["ENGINE"], reason="SQLite's write lock")]


def _held_by_dead_predecessor(base_url: str) -> Run:
    workflow = make_chain(make_endpoint(base_url=base_url))
    return make_run(workflow=workflow, workflow_name=workflow.name, inputs={"topic": "t"}, status=RunStatus.RUNNING,
                    step_count=3, lease_owner=f"{OWNER_PREFIX}dead", lease_version=1,
                    lease_expires_at=timezone.now() + datetime.timedelta(minutes=5))


async def test_companions_start_only_once_the_dead_leases_are_released(fake_llm) -> None:
    run = await sync_to_async(_held_by_dead_predecessor)(fake_llm.base_url)
    owners_seen: list[str] = []
    started = asyncio.Event()

    async def companion() -> None:
        # What the experiments' driver does first: read (and then claim) from another thread than the sweep's.
        owner = await sync_to_async(lambda: Run.objects.get(pk=run.pk).lease_owner, thread_sensitive=False)()
        owners_seen.append(owner)
        started.set()
        await asyncio.Event().wait()

    add_companion(companion)
    executor = Executor()
    # Another connection holds SQLite's write lock: the release at start waits for it, a read does not.
    blocker = sqlite3.connect(settings.DATABASES["default"]["NAME"], isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        executor.start()
        await asyncio.sleep(0.5)
        blocker.execute("ROLLBACK")
        await asyncio.wait_for(started.wait(), timeout=10)
    finally:
        blocker.close()
        _companions.remove(companion)
        await executor.stop()
    # By the time a companion runs, the dead predecessor's lease is gone (the sweep may already hold the
    # run again under a new owner of this server, never the dead one).
    assert owners_seen and owners_seen[0] != f"{OWNER_PREFIX}dead"
