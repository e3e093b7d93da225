"""What the metrics read from the database at scrape time: cheap counts of the engine's backlog."""
from __future__ import annotations

from typing import Any

from django.db.models import Count, F, Min, Sum
from django.utils import timezone

from runs.models import ACTIVE_STATUSES, Run, RunStatus


def engine_backlog() -> dict[str, Any]:
    """Active runs by status, the steps they still have to run, and how long the oldest queued run waited.

    One grouped read of the active runs (the `run_claimable` index starts with status), which are few
    next to the finished ones."""
    rows = (Run.objects.filter(status__in=ACTIVE_STATUSES).values("status")
            .annotate(runs=Count("id"), steps=Sum(F("step_count") - F("next_step")), oldest=Min("created_at")))
    by_status = {row["status"]: row for row in rows}
    oldest = by_status.get(RunStatus.QUEUED, {}).get("oldest")
    return {
        "runs": {status: by_status.get(status, {}).get("runs", 0) for status in ACTIVE_STATUSES},
        "steps_queued": sum(max(row["steps"] or 0, 0) for row in by_status.values()),
        "oldest_queued_seconds": (timezone.now() - oldest).total_seconds() if oldest else 0.0,
    }
