"""Making evaluations and giving them subjects; the scoring itself is evaluations.work."""
from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Max

from core.versioning import content_hash
from evaluations.checks import compile_assertions, judge_checks, metric_counts
from evaluations.models import Evaluation, EvaluationStatus, RunChecks, Score, ScoreOutcome
from runs.models import FINAL_STATUSES, Run, RunStatus
from workflows.models import Workflow

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
    locked = Evaluation.objects.select_for_update().get(pk=evaluation.pk)
    errors = Score.objects.filter(evaluation=evaluation, outcome=ScoreOutcome.ERROR)
    # Their per-metric outcomes are taken back out: they are counted again when scored again.
    for results in errors.values_list("results", flat=True).iterator():
        metric_counts(results, locked.metrics, sign=-1)
    count = errors.update(outcome=ScoreOutcome.PENDING, score=None, reason="", results=[])
    if count:
        Evaluation.objects.filter(pk=evaluation.pk).update(
            errors=F("errors") - count, scored=F("scored") - count, status=EvaluationStatus.PENDING, finished_at=None,
            metrics=locked.metrics)
        transaction.on_commit(wake)
    return count


def wake() -> None:
    """Have the scoring look for pending work now (it also looks every few seconds)."""
    from evaluations import work

    work.wake()


def workflow_scope(workflow_id: int) -> str:
    return f"workflow:{workflow_id}"


@transaction.atomic
def run_checks_set(*, workflow: Workflow, assertions: Any, enabled: bool = True, user: Any = None) -> RunChecks:
    """Set the assertions every succeeded run of the workflow is checked with. New assertions make a new
    evaluation, which takes the runs that finish from now on; turning checks off keeps what was scored."""
    assertions = assertions_check(assertions)
    for check in judge_checks(compile_assertions(assertions)):
        if check.judge == workflow.name:
            raise ValidationError({f"assertions[{int(check.index.split('.')[0]) - 1}].judge": [
                "A workflow cannot be its own judge: every verdict would call for another."]})
    checks = RunChecks.objects.select_for_update().filter(workflow=workflow).first() or RunChecks(workflow=workflow)
    changed = checks.pk is None or checks.assertions != assertions
    checks.enabled, checks.updated_by = enabled, _author(user)
    if changed and assertions:
        checks.assertions = assertions
        checks.evaluation = evaluation_create(scope=workflow_scope(workflow.pk), assertions=assertions, user=user,
                                              note="Runs of the workflow, checked as they finish.")
        # From now on: runs already finished are scored by a re-evaluation if wanted, not by this one.
        checks.last_run_id = Run.objects.filter(workflow=workflow).aggregate(n=Max("id"))["n"] or 0
    elif changed:
        checks.assertions, checks.evaluation = [], None
    checks.save()
    return checks


def run_checks_collect(*, limit: int = 1000) -> int:
    """Give each enabled workflow's current evaluation its runs that finished since last time (the
    succeeded ones: a failed run has no output to check). The cursor moves only over finished runs,
    so a run still going is looked at again next time. Returns how many subjects were added."""
    added = 0
    for checks in RunChecks.objects.filter(enabled=True, evaluation__isnull=False):
        with transaction.atomic():
            runs = list(Run.objects.filter(workflow_id=checks.workflow_id, pk__gt=checks.last_run_id)
                        .order_by("pk").values_list("pk", "status")[:limit])
            finished = list(itertools.takewhile(lambda run: run[1] in FINAL_STATUSES, runs))
            if not finished:
                continue
            assert checks.evaluation_id is not None
            # The cursor moves first, fenced on where it was: a second collector at the same time adds nothing.
            if not RunChecks.objects.filter(pk=checks.pk, last_run_id=checks.last_run_id).update(
                    last_run_id=finished[-1][0]):
                continue
            added += subjects_add(evaluation_id=checks.evaluation_id, subjects=(
                (pk, None, None) for pk, status in finished if status == RunStatus.SUCCEEDED))
    return added
