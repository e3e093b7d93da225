"""Reads of experiments: the list, each variant's aggregates, the results matrix a page at a time,
and the whole matrix streamed for export (memory flat whatever the number of rows)."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Avg, Count, Exists, F, OuterRef, Q, QuerySet, Sum

from core.money import money_text
from evaluations.models import Evaluation, Score, ScoreOutcome
from evaluations.selectors import wilson_interval
from experiments.models import Cell, CellStatus, Experiment, Variant

FILTERS = ("failures", "disagree")
EXPORT_CHUNK = 2000


def experiment_list() -> QuerySet[Experiment]:
    return Experiment.objects.select_related("workflow", "dataset_version__dataset", "created_by")


@dataclass
class VariantSummary:
    variant: Variant
    cells: int = 0
    finished: int = 0
    succeeded: int = 0
    failed: int = 0
    median_latency_ms: int | None = None
    p95_latency_ms: int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: dict[str, int] = field(default_factory=dict)  # currency -> billionths
    unpriced: int = 0

    @property
    def success_rate(self) -> float | None:
        ended = self.succeeded + self.failed
        return self.succeeded / ended if ended else None

    @property
    def cost_text(self) -> str:
        parts = [money_text(nano, currency) for currency, nano in sorted(self.cost.items()) if currency]
        if self.unpriced:
            parts.append(f"{self.unpriced} unpriced")
        return " + ".join(parts) or "—"

    def as_json(self) -> dict[str, Any]:
        return {"variant": self.variant.name, "variant_id": self.variant.pk, "release_id": self.variant.release_id,
                "label": self.variant.label, "cells": self.cells, "succeeded": self.succeeded, "failed": self.failed,
                "success_rate": self.success_rate, "median_latency_ms": self.median_latency_ms,
                "p95_latency_ms": self.p95_latency_ms, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "cost": {c: str(n / 1_000_000_000) for c, n in sorted(self.cost.items()) if c},
                "unpriced_cells": self.unpriced, "cost_text": self.cost_text}


def _percentile(cells: QuerySet[Cell], count: int, fraction: float) -> int | None:
    """The nearest-rank percentile of the cells' latency (one indexed-order read at an offset)."""
    if not count:
        return None
    rank = max(int(-(-fraction * count // 1)) - 1, 0)  # ceil(fraction * count) - 1
    return cells.order_by("latency_ms").values_list("latency_ms", flat=True)[rank]


def variant_summaries(experiment: Experiment) -> list[VariantSummary]:
    """Per variant: cells, success rate, median and p95 latency of the succeeded cells, tokens, cost."""
    variants = list(experiment.variants.select_related("release").order_by("position"))
    summaries = {v.pk: VariantSummary(variant=v) for v in variants}
    counts = (Cell.objects.filter(experiment=experiment).values("variant_id")
              .annotate(cells=Count("id"), succeeded=Count("id", filter=Q(status=CellStatus.SUCCEEDED)),
                        failed=Count("id", filter=Q(status=CellStatus.FAILED)),
                        finished=Count("id", filter=Q(status__in=(CellStatus.SUCCEEDED, CellStatus.FAILED))),
                        prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"),
                        unpriced=Count("id", filter=Q(status__in=(CellStatus.SUCCEEDED, CellStatus.FAILED),
                                                      cost_nano__isnull=True))))
    for row in counts:
        summary = summaries[row["variant_id"]]
        summary.cells, summary.succeeded, summary.failed = row["cells"], row["succeeded"], row["failed"]
        summary.finished, summary.unpriced = row["finished"], row["unpriced"]
        summary.prompt_tokens, summary.completion_tokens = row["prompt"] or 0, row["completion"] or 0
    costs = (Cell.objects.filter(experiment=experiment, cost_nano__isnull=False).values("variant_id", "cost_currency")
             .annotate(nano=Sum("cost_nano")))
    for row in costs:
        summaries[row["variant_id"]].cost[row["cost_currency"]] = row["nano"]
    for summary in summaries.values():
        succeeded = Cell.objects.filter(experiment=experiment, variant=summary.variant, status=CellStatus.SUCCEEDED)
        summary.median_latency_ms = _percentile(succeeded, summary.succeeded, 0.5)
        summary.p95_latency_ms = _percentile(succeeded, summary.succeeded, 0.95)
    return [summaries[v.pk] for v in variants]


@dataclass
class ResultRow:
    """One case (and repeat) of the matrix: the case's inputs and expected output, a cell per variant."""

    position: int
    repeat: int
    row_id: int
    inputs: dict[str, Any]
    expected: Any
    cells: dict[int, dict[str, Any]]  # variant id -> the cell's figures and its run's output


CELL_FIELDS = ("id", "variant_id", "position", "repeat", "row_id", "status", "run_id", "latency_ms", "prompt_tokens",
               "completion_tokens", "cost_nano", "cost_currency", "error", "item__inputs", "item__expected",
               "run__output")


def _row_keys(experiment: Experiment, row_filter: str | None) -> QuerySet[Any]:
    cells = Cell.objects.filter(experiment=experiment)
    if row_filter == "failures":
        cells = cells.filter(status=CellStatus.FAILED)
    keys = cells.values("position", "repeat").order_by("position", "repeat").distinct()
    if row_filter == "disagree":
        # Rows whose variants' finished cells gave more than one distinct output.
        keys = (Cell.objects.filter(experiment=experiment, status=CellStatus.SUCCEEDED).values("position", "repeat")
                .annotate(outputs=Count("run__output", distinct=True)).filter(outputs__gt=1).order_by("position", "repeat"))
    return keys


# How the matrix can be sorted: by one variant's cell figure, highest first (cells without it last).
SORTS = {"latency": "latency_ms", "cost": "cost_nano", "tokens": "completion_tokens"}


def _sorted_keys(experiment: Experiment, keys: QuerySet[Any], sort: str, variant_id: int) -> QuerySet[Any]:
    """The rows of `keys`, ordered by the variant's cell `sort` figure (then in the dataset's order)."""
    field_name = SORTS[sort]
    among = keys.filter(position=OuterRef("position"), repeat=OuterRef("repeat"))
    return (Cell.objects.filter(experiment=experiment, variant_id=variant_id).filter(Exists(among))
            .order_by(F(field_name).desc(nulls_last=True), "position", "repeat").values("position", "repeat"))


def results_page(experiment: Experiment, *, row_filter: str | None = None, offset: int = 0, limit: int = 50,
                 sort: tuple[str, int] | None = None) -> tuple[list[ResultRow], bool]:
    """A page of the matrix, and whether more follow: in the dataset's order, or by `sort` ((a key of
    SORTS, a variant id): that variant's figure, highest first). `row_filter`: None, "failures" (a
    variant failed) or "disagree" (the variants' outputs differ)."""
    keys = _row_keys(experiment, row_filter)
    if sort is not None:
        keys = _sorted_keys(experiment, keys, *sort)
    return _page_of(experiment, keys, offset=offset, limit=limit)


def _page_of(experiment: Experiment, row_keys: QuerySet[Any], *, offset: int, limit: int
             ) -> tuple[list[ResultRow], bool]:
    """The rows of a page of (position, repeat) keys, in that order, and whether more follow."""
    keys = list(row_keys[offset:offset + limit + 1])
    more = len(keys) > limit
    keys = keys[:limit]
    if not keys:
        return [], False
    wanted = Q()
    for key in keys:
        wanted |= Q(position=key["position"], repeat=key["repeat"])
    # The page's rows lie in one position range of the (experiment, position, repeat, variant) index.
    positions = [key["position"] for key in keys]
    cells = (Cell.objects.filter(experiment=experiment, position__gte=min(positions),
                                 position__lte=max(positions)).filter(wanted)
             .order_by("position", "repeat", "variant__position").values(*CELL_FIELDS))
    order = {(key["position"], key["repeat"]): index for index, key in enumerate(keys)}
    return sorted(_rows(cells.iterator()), key=lambda row: order[(row.position, row.repeat)]), more


def _rows(cells: Iterator[dict[str, Any]]) -> Iterator[ResultRow]:
    """Group cells (in (position, repeat) order) into matrix rows."""
    row: ResultRow | None = None
    for cell in cells:
        if row is None or (row.position, row.repeat) != (cell["position"], cell["repeat"]):
            if row is not None:
                yield row
            row = ResultRow(position=cell["position"], repeat=cell["repeat"], row_id=cell["row_id"],
                            inputs=cell["item__inputs"], expected=cell["item__expected"], cells={})
        row.cells[cell["variant_id"]] = cell
    if row is not None:
        yield row


def results_stream(experiment: Experiment) -> Iterator[ResultRow]:
    """Every row of the matrix in order, read in chunks (for export)."""
    cells = (Cell.objects.filter(experiment=experiment).order_by("position", "repeat", "variant__position")
             .values(*CELL_FIELDS))
    return _rows(cells.iterator(chunk_size=EXPORT_CHUNK))


def cell_cost_text(cell: dict[str, Any]) -> str:
    if cell["cost_nano"] is None:
        return "" if cell["status"] in (CellStatus.QUEUED, CellStatus.RUNNING) else "unpriced"
    return money_text(cell["cost_nano"], cell["cost_currency"]) if cell["cost_currency"] else "free"


# --- Scores (the experiment's current evaluation) ---------------------------------------------------

@dataclass
class VariantScore:
    passed: int = 0
    failed: int = 0
    errors: int = 0
    pending: int = 0
    mean_score: float | None = None

    @property
    def pass_rate(self) -> float | None:
        counted = self.passed + self.failed
        return self.passed / counted if counted else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.passed, self.passed + self.failed)

    def as_json(self) -> dict[str, Any]:
        interval = self.interval
        return {"passed": self.passed, "failed": self.failed, "errors": self.errors, "pending": self.pending,
                "pass_rate": self.pass_rate, "pass_rate_low": interval[0] if interval else None,
                "pass_rate_high": interval[1] if interval else None, "mean_score": self.mean_score}


def experiment_evaluations(experiment: Experiment) -> QuerySet[Evaluation]:
    """The experiment's evaluations, newest first (the current one is experiment.evaluation)."""
    return Evaluation.objects.filter(scope=f"experiment:{experiment.pk}").order_by("-number")


def variant_scores(experiment: Experiment) -> dict[int, VariantScore]:
    """Per variant id, the current evaluation's outcomes (errors apart: they are not in the pass rate)."""
    if experiment.evaluation_id is None:
        return {}
    return evaluation_variant_scores(experiment.evaluation_id)


def evaluation_variant_scores(evaluation_id: int) -> dict[int, VariantScore]:
    """Per variant id, one evaluation's outcomes (the current one or an earlier one of the experiment)."""
    rows = (Score.objects.filter(evaluation_id=evaluation_id)
            .values("run__experiment_cell__variant_id", "outcome").annotate(n=Count("id"), mean=Avg("score")))
    scores: dict[int, VariantScore] = {}
    weighted: dict[int, tuple[float, int]] = {}
    for row in rows:
        variant_id = row["run__experiment_cell__variant_id"]
        if variant_id is None:  # a retried cell's earlier run
            continue
        score = scores.setdefault(variant_id, VariantScore())
        field_name = {"pass": "passed", "fail": "failed", "error": "errors"}.get(row["outcome"], "pending")
        setattr(score, field_name, getattr(score, field_name) + row["n"])
        if row["mean"] is not None:
            total, count = weighted.get(variant_id, (0.0, 0))
            weighted[variant_id] = (total + row["mean"] * row["n"], count + row["n"])
    for variant_id, (total, count) in weighted.items():
        scores[variant_id].mean_score = total / count if count else None
    return scores


def cell_marks(experiment: Experiment, run_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per run id, its outcome in the current evaluation: outcome, score, reason."""
    if experiment.evaluation_id is None:
        return {}
    return evaluation_marks(experiment.evaluation_id, run_ids)


def evaluation_marks(evaluation_id: int, run_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per run id, its outcome in one evaluation: outcome, score, reason."""
    if not run_ids:
        return {}
    return {row["run_id"]: row for row in Score.objects.filter(evaluation_id=evaluation_id, run_id__in=run_ids)
            .values("run_id", "outcome", "score", "reason")}


def _regression_keys(experiment: Experiment, evaluation_id: int, baseline_id: int) -> QuerySet[Any]:
    """(position, repeat) of the rows where a variant fails a case (and repeat) the baseline passes."""
    baseline_passed = Score.objects.filter(
        evaluation_id=evaluation_id, outcome=ScoreOutcome.PASS, run__experiment_cell__experiment=experiment,
        run__experiment_cell__position=OuterRef("position"), run__experiment_cell__repeat=OuterRef("repeat"),
        run__experiment_cell__variant_id=baseline_id)
    return (Cell.objects.filter(experiment=experiment, run__scores__evaluation_id=evaluation_id,
                                run__scores__outcome=ScoreOutcome.FAIL)
            .exclude(variant_id=baseline_id).filter(Exists(baseline_passed))
            .values("position", "repeat").order_by("position", "repeat").distinct())


def regression_page(experiment: Experiment, *, evaluation_id: int, baseline_id: int, offset: int = 0,
                    limit: int = 50) -> tuple[list[ResultRow], bool]:
    """A page of the matrix (as results_page) holding only the rows with a regression: a cell that fails
    in `evaluation_id` where the baseline variant's cell of the same case and repeat passes."""
    return _page_of(experiment, _regression_keys(experiment, evaluation_id, baseline_id), offset=offset, limit=limit)


@dataclass
class MarkedCell:
    """A matrix cell with its outcome in the evaluation shown, and whether it regressed from the baseline."""

    cell: dict[str, Any] | None
    mark: dict[str, Any] | None
    regression: bool = False


def marked_rows(rows: list[ResultRow], variant_ids: list[int], *, evaluation_id: int | None,
                baseline_id: int | None) -> list[dict[str, Any]]:
    """The page's rows, each cell with its mark (one query for the page) and its regression flag."""
    run_ids = [cell["run_id"] for row in rows for cell in row.cells.values() if cell["run_id"]]
    marks = evaluation_marks(evaluation_id, run_ids) if evaluation_id else {}
    marked = []
    for row in rows:
        cells = {pk: MarkedCell(cell=row.cells.get(pk), mark=marks.get((row.cells.get(pk) or {}).get("run_id")))
                 for pk in variant_ids}
        base = cells.get(baseline_id) if baseline_id else None
        if base is not None and base.mark and base.mark["outcome"] == ScoreOutcome.PASS:
            for pk, item in cells.items():
                item.regression = pk != baseline_id and bool(item.mark) and item.mark["outcome"] == ScoreOutcome.FAIL
        marked.append({"row": row, "cells": [cells[pk] for pk in variant_ids]})
    return marked


@dataclass
class ComparedRow:
    """One dataset row present in both experiments: its first repeat's cell of the chosen variant of each."""

    row_id: int
    inputs: dict[str, Any]
    expected: Any
    a: dict[str, Any]
    b: dict[str, Any]

    @property
    def same_output(self) -> bool:
        return self.a["run__output"] == self.b["run__output"]


def compared_rows(a: Variant, b: Variant, *, offset: int = 0, limit: int = 50) -> tuple[list[ComparedRow], bool]:
    """A page (in a's dataset order) of the rows whose stable id both experiments ran, a's variant `a`
    beside b's variant `b`, and whether more follow. Rows are matched by DatasetRow id, so two versions
    of a dataset compare case by case."""
    in_b = Cell.objects.filter(variant=b, repeat=0).values("row_id")
    cells_a = list(Cell.objects.filter(variant=a, repeat=0, row_id__in=in_b).order_by("position")
                   .values(*CELL_FIELDS)[offset:offset + limit + 1])
    more = len(cells_a) > limit
    cells_a = cells_a[:limit]
    cells_b = {cell["row_id"]: cell for cell in Cell.objects.filter(
        variant=b, repeat=0, row_id__in=[cell["row_id"] for cell in cells_a]).values(*CELL_FIELDS)}
    return [ComparedRow(row_id=cell["row_id"], inputs=cell["item__inputs"], expected=cell["item__expected"],
                        a=cell, b=cells_b[cell["row_id"]]) for cell in cells_a], more
