"""Small pieces of the Experiments pages, and the run page's "Cell of experiment …" line as an
inclusion tag: runs/ knows nothing of experiments."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import template

from evaluations.selectors import wilson_interval
from experiments.events import progress
from experiments.models import Cell
from experiments.selectors import cell_cost_text

register = template.Library()


@register.filter
def cell_cost(cell: dict[str, Any] | None) -> str:
    return cell_cost_text(cell) if cell else ""


@register.filter
def cell_tokens(cell: dict[str, Any]) -> int:
    return (cell.get("prompt_tokens") or 0) + (cell.get("completion_tokens") or 0)


@register.filter
def experiment_cost(experiment: Any) -> str:
    """What an experiment's finished cells cost, as its progress event says it."""
    text = progress(experiment)["cost"]
    return f"{text} + {experiment.unpriced} unpriced" if experiment.unpriced and experiment.cost_currency else text


@register.filter
def share(part: int, whole: int) -> str:
    """`part` as a percentage of `whole`, for a bar segment's width (CSS, so a dot decimal)."""
    return f"{(part or 0) * 100 / whole:.3f}" if whole else "0"


@register.inclusion_tag("experiments/_run_cell.html", takes_context=True)
def experiment_cell_of(context: dict[str, Any], run: Any) -> dict[str, Any]:
    """One query, on the run page only: which experiment cell (if any) this run is."""
    cell = (Cell.objects.filter(run_id=run.pk).select_related("experiment", "variant")
            .only("position", "repeat", "experiment__name", "variant__name").first())
    user = context.get("user")
    return {"cell": cell, "can_view": user is not None and user.has_perm("experiments.view_experiment")}


@register.filter
def interval_text(score: Any) -> str:
    """A pass rate's 95 % interval as "52 to 86 %"; empty without counted outcomes."""
    interval = score.interval if score is not None else None
    return f"{round(interval[0] * 100)} to {round(interval[1] * 100)} %" if interval else ""


@register.simple_tag
def matrix_query(kept: dict[str, str], **changes: Any) -> str:
    """The matrix's query string: the evaluation and baseline shown, with `changes` (empty ones dropped)."""
    query = {**kept, **{key: str(value) for key, value in changes.items()}}
    return "?" + urlencode({key: value for key, value in query.items() if value not in ("", "None")})


@register.simple_tag
def metric_rate(counts: dict[str, Any]) -> str:
    """A metric's pass rate with its 95 % interval ("67 % (21 to 94 %)"), or "—" with nothing counted."""
    passed, failed = int(counts.get("passed", 0)), int(counts.get("failed", 0))
    interval = wilson_interval(passed, passed + failed)
    if interval is None:
        return "—"
    return f"{passed / (passed + failed):.0%} ({interval[0]:.0%} to {interval[1]:.0%})"
