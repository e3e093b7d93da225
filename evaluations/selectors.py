"""Reads of evaluations: pass rates with their interval, a run's scores."""
from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from evaluations.models import Evaluation, Score


def wilson_interval(passed: int, total: int, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score interval of a pass rate (95 % by default); None without any counted outcome."""
    if total <= 0:
        return None
    rate = passed / total
    denominator = 1 + z * z / total
    centre = (rate + z * z / (2 * total)) / denominator
    spread = z * ((rate * (1 - rate) / total + z * z / (4 * total * total)) ** 0.5) / denominator
    return max(0.0, centre - spread), min(1.0, centre + spread)


def pass_rate_json(passed: int, failed: int) -> dict[str, Any]:
    """The pass rate of counted outcomes (errors are not counted) with its 95 % Wilson interval."""
    interval = wilson_interval(passed, passed + failed)
    return {"pass_rate": passed / (passed + failed) if passed + failed else None,
            "pass_rate_low": interval[0] if interval else None, "pass_rate_high": interval[1] if interval else None}


def evaluation_list() -> QuerySet[Evaluation]:
    return Evaluation.objects.select_related("created_by")


def run_scores(run_id: int) -> QuerySet[Score]:
    """A run's scores, newest evaluation first."""
    return Score.objects.filter(run_id=run_id).select_related("evaluation").order_by("-evaluation_id")
