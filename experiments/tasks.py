"""Distributed mode: the Procrastinate task that drives one experiment, and its recovery.

`experiments.drive` holds a Procrastinate lock per experiment, so one driver runs at a time (and
the driver's tick takes the experiment row's lock besides, so a driver thought dead that comes back
only takes turns). A drive job of a worker that died is retried by runs.recover_stalled_work; the
periodic sweep below queues a driver for any active experiment that has none.
"""
from __future__ import annotations

import logging

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from procrastinate import exceptions
from procrastinate.contrib.django import app
from procrastinate.contrib.django.models import ProcrastinateJob

from experiments import driver

logger = logging.getLogger(__name__)

DRIVE_TASK = "experiments.drive"


def lock(experiment_id: int) -> str:
    return f"experiment-{experiment_id}"


@app.task(name=DRIVE_TASK)
async def drive(experiment_id: int) -> None:
    await driver.drive_until_final(experiment_id)


def defer_drive(experiment_id: int) -> None:
    try:
        drive.configure(lock=lock(experiment_id), queueing_lock=lock(experiment_id)).defer(experiment_id=experiment_id)
    except exceptions.AlreadyEnqueued:
        pass
    except Exception:  # the experiment is committed: the sweep queues its driver
        logger.warning("experiment %s: could not queue its driver now; the sweep will", experiment_id, exc_info=True)


async def _defer_drive_async(experiment_id: int) -> bool:
    try:
        await drive.configure(lock=lock(experiment_id), queueing_lock=lock(experiment_id)).defer_async(
            experiment_id=experiment_id)
    except exceptions.AlreadyEnqueued:
        return False
    return True


def _undriven() -> list[int]:
    """Active experiments with no waiting or running driver job."""
    close_old_connections()
    active = driver.active_ids()
    if not active:
        return []
    live = set(ProcrastinateJob.objects.filter(task_name=DRIVE_TASK, status__in=("todo", "doing"),
                                               lock__in=[lock(pk) for pk in active]).values_list("lock", flat=True))
    return [pk for pk in active if lock(pk) not in live]


@app.periodic(cron="* * * * * */2")
@app.task(name="experiments.recover", queueing_lock="experiments.recover")
async def recover(timestamp: int) -> int:
    queued = 0
    for experiment_id in await sync_to_async(_undriven)():
        queued += await _defer_drive_async(experiment_id)
    if queued:
        logger.info("recovery: %s experiment drivers queued again", queued)
    return queued
