"""Human review: a person's verdict on a run (good or bad, with an optional score and comment), a
blinded choice between two runs of the same case, and how often people and judges agree.

Everything here knows runs only; which runs make an experiment's queue is experiments.reviews.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from evaluations.models import Choice, Preference, Review, ReviewVerdict, Score, ScoreOutcome
from runs.models import FINAL_STATUSES, Run

JUDGE_TYPES = ("llm-rubric", "factuality")
COMMENT_MAX = 4000
# Which run a choice favours once a pair is stored the other way round.
FLIPPED = {Choice.A: Choice.B, Choice.B: Choice.A, Choice.TIE: Choice.TIE}


def _reviewed_run(run_id: Any, field_name: str) -> Run:
    if isinstance(run_id, Run):
        run = run_id
    else:
        run = Run.objects.filter(pk=run_id).only("id", "status", "inputs").first() \
            if isinstance(run_id, int) and not isinstance(run_id, bool) else None
        if run is None:
            raise ValidationError({field_name: [f"There is no run {run_id}."]})
    if run.status not in FINAL_STATUSES:
        raise ValidationError({field_name: [f"Run {run.pk} has not finished: there is nothing to review yet."]})
    return run


def _comment(comment: Any) -> str:
    if not isinstance(comment, str):
        raise ValidationError({"comment": ["Give text."]})
    if len(comment) > COMMENT_MAX:
        raise ValidationError({"comment": [f"At most {COMMENT_MAX} characters."]})
    return comment.strip()


def _score(score: Any) -> float | None:
    if score is None or score == "":
        return None
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
        raise ValidationError({"score": ["A number from 0 to 1, or nothing."]})
    return float(score)


@transaction.atomic
def review_set(*, run: Run | int, reviewer: Any, verdict: str, score: float | None = None,
               comment: str = "") -> tuple[Review, bool]:
    """The reviewer's verdict on a finished run, replacing theirs if they had one. Returns (review, created)."""
    if verdict not in ReviewVerdict.values:
        raise ValidationError({"verdict": [f"“{verdict}” is not one of {', '.join(ReviewVerdict.values)}."]})
    values = {"verdict": verdict, "score": _score(score), "comment": _comment(comment)}
    target = _reviewed_run(run, "run")
    return Review.objects.update_or_create(run=target, reviewer=reviewer, defaults=values)


@transaction.atomic
def preference_set(*, run_a: Run | int, run_b: Run | int, reviewer: Any, choice: str,
                   comment: str = "") -> tuple[Preference, bool]:
    """The reviewer's choice between two finished runs of the same case (same inputs): "a", "b" or
    "tie", replacing theirs for that pair. The pair is stored lower id first, the choice turned to match."""
    if choice not in Choice.values:
        raise ValidationError({"choice": [f"“{choice}” is not one of {', '.join(Choice.values)}."]})
    first, second = _reviewed_run(run_a, "run_a"), _reviewed_run(run_b, "run_b")
    if first.pk == second.pk:
        raise ValidationError({"run_b": ["Compare two different runs."]})
    if first.inputs != second.inputs:
        raise ValidationError({"run_b": [f"Runs {first.pk} and {second.pk} are not of the same case: "
                                         "their inputs differ."]})
    values = {"choice": choice, "comment": _comment(comment)}
    if first.pk > second.pk:
        first, second = second, first
        values["choice"] = FLIPPED[Choice(choice)]
    return Preference.objects.update_or_create(run_a=first, run_b=second, reviewer=reviewer, defaults=values)


def judge_verdict(results: Iterable[dict[str, Any]]) -> str | None:
    """The judges' verdict in a score's results: "good" when every judged assertion (llm-rubric,
    factuality, negated or in a set) passed, "bad" when one failed; None when no judge decided."""
    outcomes: list[str] = []
    pending = list(results)
    while pending:
        result = pending.pop()
        pending.extend(result.get("children") or [])
        if str(result.get("type", "")).removeprefix("not-") in JUDGE_TYPES and \
                result.get("outcome") in (ScoreOutcome.PASS, ScoreOutcome.FAIL):
            outcomes.append(result["outcome"])
    if not outcomes:
        return None
    return ReviewVerdict.GOOD if all(o == ScoreOutcome.PASS for o in outcomes) else ReviewVerdict.BAD


@dataclass
class Agreement:
    """How often people's verdicts match another verdict on the same runs: one comparison per review."""

    compared: int = 0
    agreed: int = 0

    @property
    def percent(self) -> float | None:
        return 100 * self.agreed / self.compared if self.compared else None

    def add(self, human: str, other: str | None) -> None:
        if other is not None:
            self.compared += 1
            self.agreed += human == other

    def as_json(self) -> dict[str, Any]:
        return {"compared": self.compared, "agreed": self.agreed, "percent": self.percent}


@dataclass
class Agreements:
    judge: Agreement  # people vs the judges' assertions (llm-rubric, factuality)
    checks: Agreement  # people vs the run's whole outcome (every assertion), pass = good

    def as_json(self) -> dict[str, Any]:
        return {"judge": self.judge.as_json(), "checks": self.checks.as_json()}


def agreement(*, evaluation_id: int | None, run_ids: QuerySet[Any] | Iterable[int]) -> Agreements:
    """People against the evaluation's verdicts, over the reviewed runs among `run_ids`: the judges'
    (where a judge decided) and the whole outcome (pass or fail; errors and pending left out)."""
    found = Agreements(judge=Agreement(), checks=Agreement())
    if evaluation_id is None:
        return found
    reviews = list(Review.objects.filter(run_id__in=run_ids).values_list("run_id", "verdict"))
    scores = {row["run_id"]: row for row in Score.objects.filter(
        evaluation_id=evaluation_id, run_id__in={run_id for run_id, _ in reviews},
        outcome__in=(ScoreOutcome.PASS, ScoreOutcome.FAIL)).values("run_id", "outcome", "results")}
    for run_id, verdict in reviews:
        score = scores.get(run_id)
        if score is None:
            continue
        found.judge.add(verdict, judge_verdict(score["results"]))
        found.checks.add(verdict, ReviewVerdict.GOOD if score["outcome"] == ScoreOutcome.PASS else ReviewVerdict.BAD)
    return found


def reviews_keep() -> QuerySet[Any]:
    """The ids of runs someone reviewed or compared: the prune leaves them unless asked (runs.retention)."""
    return Review.objects.order_by().values("run_id").union(Preference.objects.order_by().values("run_a_id"),
                                                            Preference.objects.order_by().values("run_b_id"))


def reviews_let_go(run_ids: list[int]) -> None:
    """Before those runs are pruned: their reviews and preferences go with them (the prune deletes
    runs without Django's cascade)."""
    Review.objects.filter(run_id__in=run_ids).delete()
    Preference.objects.filter(run_a_id__in=run_ids).delete()
    Preference.objects.filter(run_b_id__in=run_ids).delete()
