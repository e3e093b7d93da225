"""Pruning old runs while runs execute: the pruner's short batches and the runs' step commits share
the write lock, so nothing fails with "database is locked", every run finishes with each step
committed once (tests/runs/test_retention.py checks the space comes back). `make soak-prune` runs it with 100,000 old runs."""
import asyncio
import datetime
import os
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
OLD_RUNS = int(os.environ.get("PRUNE_SOAK_RUNS", "3000"))
BATCH = 200 if OLD_RUNS <= 10_000 else 500
LIVE_AT_ONCE = 8
SEED_BATCH = 5000


def seed_old(workflow) -> None:
    release = make_release(workflow)
    long_ago = timezone.now() - datetime.timedelta(days=200)
    for start in range(0, OLD_RUNS, SEED_BATCH):
        runs = Run.objects.bulk_create([Run(workflow=workflow, workflow_name=workflow.name, release=release,
                                            status=RunStatus.SUCCEEDED, output=f"old answer {n}")
                                        for n in range(start, min(OLD_RUNS, start + SEED_BATCH))])
        Run.objects.filter(pk__in=[r.pk for r in runs]).update(created_at=long_ago)
        Response.objects.bulk_create([Response(run=run, index=i, output_key=f"s{i}", payload_name="p",
                                               output=os.urandom(200).hex(), status=ResponseStatus.SUCCEEDED)
                                      for run in runs for i in range(2)])


async def test_pruning_beside_live_runs_loses_nothing(fake_llm):
    fake_llm.control(latency_ms=100)
    workflow = await sync_to_async(lambda: make_chain(make_endpoint(fake_llm.base_url)))()
    await sync_to_async(seed_old)(workflow)
    outcome: dict = {}

    def prune() -> None:
        try:
            outcome["started"] = timezone.now()
            outcome["report"] = runs_prune(older_than=datetime.timedelta(days=90), batch_size=BATCH, pause=0.02)
            outcome["ended"] = timezone.now()
        except BaseException as exc:  # noqa: BLE001 - the assertion below shows it
            outcome["error"] = exc
        finally:
            connection.close()

    pruner = threading.Thread(target=prune)
    pruner.start()
    live: list[Run] = []
    statuses: list[str] = []
    while pruner.is_alive() or not live:  # waves of runs for as long as the pruner works
        wave = [await sync_to_async(run_start)(workflow=workflow, inputs={"topic": f"t{len(live) + n}"}, user=None)
                for n in range(LIVE_AT_ONCE)]
        live += wave
        statuses += await asyncio.gather(*(execute_run(run.pk) for run in wave))
    await sync_to_async(pruner.join)()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["report"].runs == OLD_RUNS
    assert statuses == [RunStatus.SUCCEEDED] * len(live)
    for run in live:
        indexes = [r.index async for r in Response.objects.filter(run_id=run.pk).order_by("index")]
        assert indexes == [0, 1, 2]  # each step committed once
    assert await Run.objects.acount() == len(live)
    # They did overlap: the pruner ran while steps were being committed.
    finished = [r.finished_at async for r in Run.objects.all()]
    started = [r.started_at async for r in Run.objects.all()]
    assert outcome["started"] < max(finished) and outcome["ended"] > min(started)
