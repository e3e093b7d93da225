"""Scores on pages of apps that may not import evaluations: the run page's assertion results and the
statistics page's pass rate of each label per day, as inclusion tags (runs/ knows nothing of them)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django import template

from evaluations.models import Evaluation
from evaluations.selectors import label_pass_rate_days, run_scores
from evaluations.services import workflow_scope
from releases.models import Label
from runs.charts import BarChart, bar_chart

register = template.Library()


def _flat(results: list[dict[str, Any]], depth: int = 0) -> Iterator[dict[str, Any]]:
    """Each assertion's result, an assert-set's members after it, indented."""
    for result in results:
        yield {**result, "depth": depth}
        yield from _flat(result.get("children") or [], depth + 1)


@register.inclusion_tag("evaluations/_run_scores.html", takes_context=True)
def run_assertion_results(context: dict[str, Any], run: Any) -> dict[str, Any]:
    """One query, on the run page only: every evaluation that scored this run, newest first."""
    user = context.get("user")
    if user is None or not user.has_perm("evaluations.view_evaluation"):
        return {"scores": []}
    return {"scores": [{"score": score, "results": list(_flat(score.results or [])), **_scope_of(score.evaluation.scope)}
                       for score in run_scores(run.pk)]}


def _scope_of(scope: str) -> dict[str, int]:
    """"experiment:12" -> {"experiment_id": 12}; "workflow:3" -> {"workflow_id": 3}."""
    kind, _, pk = scope.partition(":")
    return {f"{kind}_id": int(pk)} if kind in ("experiment", "workflow") and pk.isdigit() else {}


def _percent(value: int | float) -> str:
    return f"{value:.0f} %"


def _label_chart(workflow_id: int, label: str, days: int) -> BarChart | None:
    found = label_pass_rate_days(workflow_id, label, days=days)
    if not any(day.passed + day.failed for day in found):
        return None
    chart = bar_chart(
        chart_id=f"chart-label-pass-rate-{label}", title=f"Pass rate of “{label}” per day", series=["pass rate"],
        categories=[day.day.strftime("%m-%d") for day in found],
        values=[((day.pass_rate or 0) * 100,) for day in found], fmt=_percent, unit="%", top=100, label_every=5,
        intervals=[(day.interval[0] * 100, day.interval[1] * 100) if day.interval else None for day in found],
        note="Runs of the release the label pointed at, as the workflow's run checks scored them; errors not counted.")
    chart.interval_name = "95 % interval"
    return chart


@register.inclusion_tag("evaluations/_label_charts.html", takes_context=True)
def label_pass_rate_charts(context: dict[str, Any], workflow: Any, days: int = 30) -> dict[str, Any]:
    """A chart per label of the workflow whose runs its run checks scored in the last `days` days."""
    user = context.get("user")
    if user is None or not user.has_perm("evaluations.view_evaluation") \
            or not Evaluation.objects.filter(scope=workflow_scope(workflow.pk)).exists():
        return {"charts": []}
    names = Label.objects.filter(workflow_id=workflow.pk).order_by("name").values_list("name", flat=True)
    return {"charts": [chart for name in names if (chart := _label_chart(workflow.pk, name, days))]}
