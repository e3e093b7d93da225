"""Making evaluations and giving them subjects; the scoring itself is evaluations.work."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Max

from core.versioning import content_hash
from evaluations.checks import compile_assertions
from evaluations.models import Evaluation, EvaluationStatus, Score, ScoreOutcome

INSERT_BATCH = 2000
# A subject: (run id, the case's expected output, the case's own assertions or None).
Subject = tuple[int, Any, list[dict[str, Any]] | None]


def _author(user: Any) -> Any:
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def assertions_check(assertions: Any, *, field_name: str = "assertions") -> list[dict[str, Any]]:
    """The assertions as given, once they compile; ValidationError naming the assertion and field."""
    compile_assertions(assertions, field_name=field_name)
    return list(assertions or [])


@transaction.atomic
def evaluation_create(*, scope: str, assertions: list[dict[str, Any]], subjects: Iterable[Subject] = (),
                      note: str = "", user: Any = None, allow_empty: bool = False) -> Evaluation:
    """A new evaluation of `scope` (numbered after its earlier ones) with its subjects, (run id,
    expected, the case's own assertions or None), pending. More may be added while it runs.
    `allow_empty`: no assertions of its own (its subjects bring theirs)."""
    assertions = assertions_check(assertions)
    if not assertions and not allow_empty:
        raise ValidationError({"assertions": ["Give at least one assertion."]})
    number = (Evaluation.objects.filter(scope=scope).aggregate(n=Max("number"))["n"] or 0) + 1
    evaluation = Evaluation.objects.create(scope=scope, number=number, assertions=assertions,
                                           assertions_hash=content_hash(assertions), note=note[:200],
                                           created_by=_author(user))
    subjects_add(evaluation_id=evaluation.pk, subjects=subjects)
    return evaluation


def subjects_add(*, evaluation_id: int, subjects: Iterable[Subject]) -> int:
    """Add pending scores (in the caller's transaction); the evaluation is pending again if it was done."""
    added = 0
    batch: list[Score] = []
    for run_id, expected, own in subjects:
        batch.append(Score(evaluation_id=evaluation_id, run_id=run_id, expected=expected, assertions=own or None))
        if len(batch) >= INSERT_BATCH:
            added += len(Score.objects.bulk_create(batch, ignore_conflicts=True))
            batch = []
    if batch:
        added += len(Score.objects.bulk_create(batch, ignore_conflicts=True))
    if added:
        Evaluation.objects.filter(pk=evaluation_id).update(total=F("total") + added)
        Evaluation.objects.filter(pk=evaluation_id, status=EvaluationStatus.DONE).update(
            status=EvaluationStatus.PENDING, finished_at=None)
        transaction.on_commit(wake)
    return added


@transaction.atomic
def evaluation_rescore_errors(*, evaluation: Evaluation) -> int:
    """Score again only the subjects that ended in error (a check that could not be made), in place."""
    count = Score.objects.filter(evaluation=evaluation, outcome=ScoreOutcome.ERROR).update(
        outcome=ScoreOutcome.PENDING, score=None, reason="", results=[])
    if count:
        Evaluation.objects.filter(pk=evaluation.pk).update(
            errors=F("errors") - count, scored=F("scored") - count, status=EvaluationStatus.PENDING, finished_at=None)
        transaction.on_commit(wake)
    return count


def wake() -> None:
    """Have the scoring look for pending work now (it also looks every few seconds)."""
    from evaluations import work

    work.wake()
