"""Pruning thousands of old runs while runs execute: the pruner's short batches and the runs' step
commits share the write lock, so nothing fails with "database is locked" and every run finishes
with each step committed once."""
import asyncio
import datetime
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.utils import timezone

from runs.engine import execute_run
from runs.models import Response, ResponseStatus, Run, RunStatus
from runs.retention import runs_prune
from runs.services import run_start
from tests.factories import make_chain, make_endpoint, make_release

pytestmark = pytest.mark.django_db(transaction=True)
OLD_RUNS = 3000
LIVE_RUNS = 8


def seed_old(workflow) -> None:
    release = make_release(workflow)
    long_ago = timezone.now() - datetime.timedelta(days=200)
    runs = Run.objects.bulk_create([Run(workflow=workflow, workflow_name=workflow.name, release=release,
                                        status=RunStatus.SUCCEEDED, output=f"old answer {n}") for n in range(OLD_RUNS)])
    Run.objects.filter(pk__in=[r.pk for r in runs]).update(created_at=long_ago)
    Response.objects.bulk_create([Response(run=run, index=i, output_key=f"s{i}", payload_name="p", output="x" * 300,
                                           status=ResponseStatus.SUCCEEDED) for run in runs for i in range(2)])


async def test_pruning_beside_live_runs_loses_nothing(fake_llm):
    fake_llm.control(latency_ms=150)
    workflow = await sync_to_async(lambda: make_chain(make_endpoint(fake_llm.base_url)))()
    await sync_to_async(seed_old)(workflow)
    outcome: dict = {}

    def prune() -> None:
        try:
            outcome["started"] = timezone.now()
            outcome["report"] = runs_prune(older_than=datetime.timedelta(days=90), batch_size=200, pause=0.02)
            outcome["ended"] = timezone.now()
        except BaseException as exc:  # noqa: BLE001 - the assertion below shows it
            outcome["error"] = exc
        finally:
            connection.close()

    live = [await sync_to_async(run_start)(workflow=workflow, inputs={"topic": f"t{n}"}, user=None)
            for n in range(LIVE_RUNS)]
    pruner = threading.Thread(target=prune)
    pruner.start()
    statuses = await asyncio.gather(*(execute_run(run.pk) for run in live))
    await sync_to_async(pruner.join)()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["report"].runs == OLD_RUNS and outcome["report"].batches == OLD_RUNS // 200
    assert statuses == [RunStatus.SUCCEEDED] * LIVE_RUNS
    for run in live:
        indexes = [r.index async for r in Response.objects.filter(run_id=run.pk).order_by("index")]
        assert indexes == [0, 1, 2]
    assert await Run.objects.acount() == LIVE_RUNS
    # They did overlap: the pruner ran while steps were being committed.
    finished = [r.finished_at async for r in Run.objects.all()]
    started = [r.started_at async for r in Run.objects.all()]
    assert outcome["started"] < max(finished) and outcome["ended"] > min(started)
