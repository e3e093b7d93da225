"""The statistics rollups (RunRollup, StepRollup) recomputed from the runs, with the plain ORM.

The database keeps the rollups current by itself (a trigger, runs/migrations/0008); this is the
rebuild `manage.py rebuild_run_stats` runs, the data migration's first fill, and what the tests
compare the trigger's work with. It reads every finished run once, so it belongs in a quiet moment.
"""
from __future__ import annotations

import datetime
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, Sum, Value
from django.db.models.functions import Coalesce, TruncHour

from runs.triggers import FINAL_NAMES as FINAL

BATCH = 2000


def run_rollup_rows(registry: Any) -> list[dict[str, Any]]:
    Run = registry.get_model("runs", "Run")
    return list(Run.objects.filter(status__in=FINAL, workflow__isnull=False)
                .annotate(hour=TruncHour("created_at", tzinfo=datetime.UTC))
                .values("hour", "workflow_id", "release_id", "status")
                .annotate(runs=Count("id"), prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"),
                          latency=Sum("latency_ms")).order_by())


def _costs(registry: Any) -> bool:
    """Whether this (historical) schema has the cost columns (runs 0013): the 0008 fill predates them."""
    return any(field.name == "cost_nano" for field in registry.get_model("runs", "StepRollup")._meta.fields)


def step_rollup_rows(registry: Any) -> list[dict[str, Any]]:
    Response = registry.get_model("runs", "Response")
    rows = (Response.objects.filter(run__status__in=FINAL, run__workflow__isnull=False).exclude(status="copied")
            .annotate(hour=TruncHour("run__created_at", tzinfo=datetime.UTC)))
    costs: dict[str, Any] = {}
    if _costs(registry):
        rows = rows.annotate(currency=Coalesce("cost_currency", Value("")))
        costs = {"cost": Sum("cost_nano"), "unpriced": Count("id", filter=Q(cost_nano__isnull=True))}
    keys = ["hour", "run__workflow_id", "endpoint_name", "model", *(["currency"] if costs else [])]
    return list(rows.values(*keys).annotate(steps=Count("id"), failed=Count("id", filter=Q(status="failed")),
                                            prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"),
                                            latency=Sum("latency_ms"), **costs).order_by())


@transaction.atomic
def rollups_rebuild(*, registry: Any) -> tuple[int, int]:
    """Empty both rollups and count every finished run again. (rows of RunRollup, rows of StepRollup)"""
    RunRollup = registry.get_model("runs", "RunRollup")
    StepRollup = registry.get_model("runs", "StepRollup")
    RunRollup.objects.all().delete()
    StepRollup.objects.all().delete()
    runs = [RunRollup(hour=r["hour"], workflow_id=r["workflow_id"], release_id=r["release_id"], status=r["status"],
                      runs=r["runs"], prompt_tokens=r["prompt"] or 0, completion_tokens=r["completion"] or 0,
                      latency_ms=r["latency"] or 0) for r in run_rollup_rows(registry)]
    cost = (lambda r: {"cost_currency": r["currency"], "cost_nano": r["cost"] or 0, "unpriced": r["unpriced"]}
            ) if _costs(registry) else (lambda r: {})
    steps = [StepRollup(hour=r["hour"], workflow_id=r["run__workflow_id"], endpoint_name=r["endpoint_name"],
                        model=r["model"], steps=r["steps"], failed=r["failed"], prompt_tokens=r["prompt"] or 0,
                        completion_tokens=r["completion"] or 0, latency_ms=r["latency"] or 0, **cost(r))
             for r in step_rollup_rows(registry)]
    RunRollup.objects.bulk_create(runs, batch_size=BATCH)
    StepRollup.objects.bulk_create(steps, batch_size=BATCH)
    return len(runs), len(steps)
