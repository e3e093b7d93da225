"""Reads of evaluations: pass rates with their interval, a run's scores, a label's pass rate per day."""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from evaluations.models import Evaluation, Score, ScoreOutcome
from releases.models import Label, LabelMove


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


@dataclass(frozen=True)
class DayPassRate:
    day: datetime.date
    passed: int = 0
    failed: int = 0
    errors: int = 0

    @property
    def pass_rate(self) -> float | None:
        return self.passed / (self.passed + self.failed) if self.passed + self.failed else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.passed, self.passed + self.failed)


def _label_spans(workflow_id: int, label: str, start: datetime.datetime
                 ) -> list[tuple[int, datetime.datetime | None, datetime.datetime | None]]:
    """(release id, since, until) for each time the label pointed at a release that reaches past `start`."""
    moves = list(LabelMove.objects.filter(workflow_id=workflow_id, label=label).order_by("moved_at", "id")
                 .values_list("to_release_id", "moved_at"))
    if not moves:  # a label older than its log: it has pointed where it points now
        current = Label.objects.filter(workflow_id=workflow_id, name=label).values_list("release_id", flat=True).first()
        return [(current, None, None)] if current else []
    spans: list[tuple[int, datetime.datetime | None, datetime.datetime | None]] = []
    for index, (release_id, since) in enumerate(moves):
        until = moves[index + 1][1] if index + 1 < len(moves) else None
        if release_id is not None and (until is None or until > start):
            spans.append((release_id, since, until))
    return spans


def label_pass_rate_days(workflow_id: int, label: str, *, days: int = 30, today: datetime.date | None = None
                         ) -> list[DayPassRate]:
    """Per day of the last `days` (the server's time zone, oldest first), the pass rate of the workflow's
    runs of the release the label pointed at when each run was created, as its run checks scored them
    (evaluations of scope "workflow:<id>"); errors apart. Days without a score are zeros."""
    today = today or timezone.localdate()
    first = today - datetime.timedelta(days=days - 1)
    start = timezone.make_aware(datetime.datetime.combine(first, datetime.time.min))
    spans = _label_spans(workflow_id, label, start)
    counts: dict[datetime.date, dict[str, int]] = {}
    if spans:
        pointed = Q()
        for release_id, since, until in spans:
            pointed |= Q(run__release_id=release_id, **({"run__created_at__gte": since} if since else {}),
                         **({"run__created_at__lt": until} if until else {}))
        rows = (Score.objects.filter(evaluation__scope=f"workflow:{workflow_id}", run__created_at__gte=start,
                                     outcome__in=(ScoreOutcome.PASS, ScoreOutcome.FAIL, ScoreOutcome.ERROR))
                .filter(pointed).annotate(day=TruncDate("run__created_at")).values("day", "outcome")
                .annotate(n=Count("id")))
        for row in rows:
            counts.setdefault(row["day"], {})[row["outcome"]] = row["n"]
    result = []
    for offset in range(days):
        day = first + datetime.timedelta(days=offset)
        found = counts.get(day, {})
        result.append(DayPassRate(day=day, passed=found.get(ScoreOutcome.PASS, 0), failed=found.get(ScoreOutcome.FAIL, 0),
                                  errors=found.get(ScoreOutcome.ERROR, 0)))
    return result
