"""Distributed mode: pending evaluations are scored by one worker at a time (a queueing lock), every
2 s and at once when an evaluation gets subjects (evaluations.work.wake)."""
from __future__ import annotations

import logging

from asgiref.sync import sync_to_async
from procrastinate import exceptions
from procrastinate.contrib.django import app

from evaluations.work import evaluations_work

logger = logging.getLogger(__name__)

WORK_TASK = "evaluations.work"


@app.periodic(cron="* * * * * */2")
@app.task(name=WORK_TASK, queueing_lock=WORK_TASK, pass_context=True)
async def work(context: object, timestamp: int | None = None) -> int:
    from runs.engine.runner import new_owner

    return await sync_to_async(evaluations_work, thread_sensitive=False)(owner=new_owner("worker:evaluations:"))


def defer_work() -> None:
    try:
        work.defer()
    except exceptions.AlreadyEnqueued:
        pass
    except Exception:  # the evaluation is committed: the periodic task scores it
        logger.warning("could not queue the evaluations task now; the periodic one will", exc_info=True)
