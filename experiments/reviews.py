"""Reviewing an experiment's cells: the queue of succeeded cells a person has not reviewed yet (in the
dataset's order), the blinded A/B queue of cases two variants both answered, progress, the summary
per variant and pair, and people's agreement with the judges. The reviews themselves are runs'
(evaluations.reviews): a cell's review is its run's."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Avg, Count, Q, QuerySet

from evaluations.models import Choice, Preference, Review, ReviewVerdict
from evaluations.reviews import Agreements, agreement
from experiments.models import Cell, CellStatus, Experiment, Variant

CELL_KEY = ("position", "repeat", "variant__position")


def reviewable_cells(experiment: Experiment, variant: Variant | None = None) -> QuerySet[Cell]:
    """The cells a person can review: succeeded, with their run, in the dataset's order."""
    cells = Cell.objects.filter(experiment=experiment, status=CellStatus.SUCCEEDED, run__isnull=False)
    if variant is not None:
        cells = cells.filter(variant=variant)
    return cells.order_by(*CELL_KEY)


def _after(cell: Cell) -> Q:
    """Cells after `cell` in the queue's order (position, repeat, variant)."""
    position, repeat, variant_position = cell.position, cell.repeat, cell.variant.position
    return (Q(position__gt=position) | Q(position=position, repeat__gt=repeat)
            | Q(position=position, repeat=repeat, variant__position__gt=variant_position))


def review_queue_next(experiment: Experiment, reviewer: Any, *, variant: Variant | None = None,
                      after: Cell | None = None) -> Cell | None:
    """The next succeeded cell (after `after`, a skipped or just reviewed one) the reviewer has not reviewed."""
    cells = reviewable_cells(experiment, variant).exclude(run__reviews__reviewer=reviewer)
    if after is not None:
        cells = cells.filter(_after(after))
    return cells.select_related("variant", "item", "run").first()


@dataclass
class Progress:
    reviewed: int
    total: int

    @property
    def left(self) -> int:
        return self.total - self.reviewed


def review_progress(experiment: Experiment, reviewer: Any, *, variant: Variant | None = None) -> Progress:
    """How many of the reviewable cells this reviewer has reviewed."""
    cells = reviewable_cells(experiment, variant).order_by()
    # Other people's reviews join in too: count each cell once.
    counts = cells.aggregate(total=Count("id", distinct=True),
                             reviewed=Count("id", filter=Q(run__reviews__reviewer=reviewer), distinct=True))
    return Progress(reviewed=counts["reviewed"], total=counts["total"])


# --- Blinded A/B --------------------------------------------------------------------------------

@dataclass
class Pair:
    """One case both variants answered, as a reviewer sees it: `shown_a` on the left as "A"."""

    position: int
    repeat: int
    shown_a: Cell
    shown_b: Cell
    choice: str | None = None  # this reviewer's, as A/B of what they were shown

    @property
    def key(self) -> str:
        return f"{self.position}-{self.repeat}"


def _swapped(experiment: Experiment, position: int, repeat: int, reviewer: Any) -> bool:
    """Which side the first variant goes: random across cases, the same each time a reviewer sees one."""
    digest = hashlib.sha256(f"{experiment.pk}:{position}:{repeat}:{reviewer.pk}".encode()).digest()
    return bool(digest[0] & 1)


def _choices(reviewer: Any, run_ids: set[int]) -> dict[tuple[int, int], str]:
    rows = Preference.objects.filter(reviewer=reviewer, run_a_id__in=run_ids).values_list("run_a_id", "run_b_id", "choice")
    return {(a, b): choice for a, b, choice in rows}


def ab_pairs(experiment: Experiment, first: Variant, second: Variant, reviewer: Any) -> list[Pair]:
    """Every case (position and repeat) where both variants' cells succeeded, in the dataset's order,
    sides placed for this reviewer, with their choice if they made one."""
    cells: dict[int, dict[tuple[int, int], Cell]] = {first.pk: {}, second.pk: {}}
    for cell in (reviewable_cells(experiment).filter(variant__in=(first, second))
                 .select_related("variant", "item", "run")):
        cells[cell.variant_id][(cell.position, cell.repeat)] = cell
    keys = sorted(set(cells[first.pk]) & set(cells[second.pk]))
    run_ids = {cell.run_id for side in cells.values() for cell in side.values()}
    chosen = _choices(reviewer, run_ids)
    pairs = []
    for position, repeat in keys:
        left, right = cells[first.pk][(position, repeat)], cells[second.pk][(position, repeat)]
        if _swapped(experiment, position, repeat, reviewer):
            left, right = right, left
        stored = chosen.get((min(left.run_id, right.run_id), max(left.run_id, right.run_id)))
        if stored is not None and left.run_id > right.run_id:  # stored lower run id first
            stored = {Choice.A: Choice.B, Choice.B: Choice.A}.get(stored, stored)
        pairs.append(Pair(position=position, repeat=repeat, shown_a=left, shown_b=right, choice=stored))
    return pairs


def ab_queue_next(pairs: list[Pair], *, after: str | None = None) -> Pair | None:
    """The first pair without this reviewer's choice, after the pair keyed `after` if given."""
    started = after is None
    for pair in pairs:
        if started and pair.choice is None:
            return pair
        started = started or pair.key == after
    return None


# --- Summary ------------------------------------------------------------------------------------

@dataclass
class VariantReviews:
    variant: Variant
    good: int = 0
    bad: int = 0
    mean_score: float | None = None

    @property
    def reviewed(self) -> int:
        return self.good + self.bad

    @property
    def good_rate(self) -> float | None:
        return self.good / self.reviewed if self.reviewed else None


@dataclass
class PairPreferences:
    """Blinded choices between two variants of one experiment, counted per variant whatever the side."""

    first: Variant
    second: Variant
    first_wins: int = 0
    second_wins: int = 0
    ties: int = 0

    @property
    def total(self) -> int:
        return self.first_wins + self.second_wins + self.ties


@dataclass
class ReviewSummary:
    variants: list[VariantReviews]
    pairs: list[PairPreferences] = field(default_factory=list)
    reviews: int = 0


def _cell_runs(experiment: Experiment) -> QuerySet[Any]:
    return Cell.objects.filter(experiment=experiment, run__isnull=False).values("run_id")


def variant_reviews(experiment: Experiment) -> list[VariantReviews]:
    """Per variant, everyone's good and bad verdicts on its cells and their mean score."""
    variants = list(experiment.variants.order_by("position"))
    found = {v.pk: VariantReviews(variant=v) for v in variants}
    rows = (Review.objects.filter(run__experiment_cell__experiment=experiment)
            .values("run__experiment_cell__variant_id")
            .annotate(good=Count("id", filter=Q(verdict=ReviewVerdict.GOOD)),
                      bad=Count("id", filter=Q(verdict=ReviewVerdict.BAD)), mean=Avg("score")))
    for row in rows:
        entry = found[row["run__experiment_cell__variant_id"]]
        entry.good, entry.bad, entry.mean_score = row["good"], row["bad"], row["mean"]
    return [found[v.pk] for v in variants]


def pair_preferences(experiment: Experiment) -> list[PairPreferences]:
    """Everyone's blinded choices between the experiment's variants, per pair of variants."""
    variants = {v.pk: v for v in experiment.variants.all()}
    rows = (Preference.objects.filter(run_a__experiment_cell__experiment=experiment,
                                      run_b__experiment_cell__experiment=experiment)
            .values("run_a__experiment_cell__variant_id", "run_b__experiment_cell__variant_id", "choice")
            .annotate(n=Count("id")))
    pairs: dict[tuple[int, int], PairPreferences] = {}
    for row in rows:
        a, b = row["run_a__experiment_cell__variant_id"], row["run_b__experiment_cell__variant_id"]
        choice = row["choice"]
        if variants[a].position > variants[b].position:
            a, b = b, a
            choice = {Choice.A: Choice.B, Choice.B: Choice.A}.get(choice, choice)
        entry = pairs.setdefault((a, b), PairPreferences(first=variants[a], second=variants[b]))
        if choice == Choice.A:
            entry.first_wins += row["n"]
        elif choice == Choice.B:
            entry.second_wins += row["n"]
        else:
            entry.ties += row["n"]
    return [pairs[key] for key in sorted(pairs, key=lambda k: (variants[k[0]].position, variants[k[1]].position))]


def experiment_agreement(experiment: Experiment) -> Agreements:
    """People against the experiment's current evaluation, over its cells' runs."""
    return agreement(evaluation_id=experiment.evaluation_id, run_ids=_cell_runs(experiment))


def review_summary(experiment: Experiment) -> ReviewSummary:
    per_variant = variant_reviews(experiment)
    return ReviewSummary(variants=per_variant, pairs=pair_preferences(experiment),
                         reviews=sum(entry.reviewed for entry in per_variant))


def recent_reviews(experiment: Experiment, limit: int = 50) -> QuerySet[Review]:
    """The latest reviews of the experiment's cells, with who gave them and the cell's variant."""
    return (Review.objects.filter(run__experiment_cell__experiment=experiment)
            .select_related("reviewer", "run__experiment_cell__variant").order_by("-updated_at", "-id")[:limit])
