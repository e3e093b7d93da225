"""Driving an experiment to its end from a synchronous test, as `manage.py run_experiment` does."""
from __future__ import annotations

import asyncio

from experiments.driver import drive_here
from experiments.models import Experiment
from llm import client as llm


def drive_to_end(experiment_id: int) -> Experiment:
    async def drive() -> None:
        try:
            await drive_here(experiment_id, poll=0.05)
        finally:
            await llm.aclose_all()  # the pooled clients belong to this loop

    asyncio.run(drive())
    return Experiment.objects.get(pk=experiment_id)
