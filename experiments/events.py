"""Experiment events: the group `experiment-<id>` gets `experiment.progress` after every driver pass
that changed something (fields in docs/events.md). Sent after the pass committed."""
from __future__ import annotations

import logging
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.utils import timezone

from core.money import money_text

logger = logging.getLogger(__name__)

GROUP_MESSAGE_TYPE = "experiment.event"


def group(experiment_id: int) -> str:
    return f"experiment-{experiment_id}"


def progress(experiment: Any) -> dict[str, Any]:
    """Counts, pace and cost so far of an experiment (its row as the driver's pass left it)."""
    done = experiment.succeeded + experiment.failed + experiment.cancelled + experiment.skipped
    elapsed = ((experiment.finished_at or timezone.now()) - experiment.started_at).total_seconds() \
        if experiment.started_at else 0.0
    finished_cells = experiment.succeeded + experiment.failed
    rate = finished_cells / elapsed if elapsed > 0 else 0.0
    left = experiment.queued + experiment.running
    # The embedded driver starts cells ahead of free slots (driver.tick's `gated`); until a slot frees
    # their runs wait their turn, so they are counted as queued: at most `concurrency` run.
    running = min(experiment.running, experiment.concurrency)
    cost = money_text(experiment.cost_nano, experiment.cost_currency) if experiment.cost_currency else (
        "free" if done and not experiment.unpriced else "—")
    return {
        "type": "experiment.progress", "experiment_id": experiment.pk, "status": experiment.status,
        "stop_reason": experiment.stop_reason, "cells": experiment.cell_count, "done": done,
        "queued": experiment.queued + experiment.running - running, "running": running, "succeeded": experiment.succeeded,
        "failed": experiment.failed, "cancelled": experiment.cancelled, "skipped": experiment.skipped,
        "cells_per_second": round(rate, 2), "eta_seconds": round(left / rate) if rate > 0 and left else None,
        "cost": cost, "cost_nano": experiment.cost_nano, "cost_currency": experiment.cost_currency,
        "unpriced": experiment.unpriced,
        "budget": money_text(experiment.budget_nano, experiment.budget_currency)
        if experiment.budget_nano is not None else None,
        "tokens": experiment.prompt_tokens + experiment.completion_tokens,
    }


async def asend(experiment_id: int, event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    name = group(experiment_id)
    if isinstance(layer, InMemoryChannelLayer) and not layer.groups.get(name):
        return  # nobody in this process listens
    try:
        await layer.group_send(name, {"type": GROUP_MESSAGE_TYPE, "event": event})
    except Exception:
        logger.warning("could not send progress of experiment %s", experiment_id, exc_info=True)
