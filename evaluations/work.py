"""Scoring: pending scores of an evaluation are taken in batches, each scored and committed in one
short transaction under the evaluation's lease (as reprice jobs do), so a crash loses at most the
batch in flight and a successor resumes after the last committed one. Checks are deterministic and
take microseconds; reading outputs is most of the cost.

Who works: in embedded mode a companion of the run executor (a thread per pass, so the loop stays
free); in distributed mode the Procrastinate task `evaluations.work` (evaluations/tasks.py).
"""
from __future__ import annotations

import asyncio
import datetime
import logging
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import Q
from django.utils import timezone

from core.internals.django_raw_delete import raw_delete
from evaluations.checks import Check, Subject, compile_assertions, evaluate
from evaluations.models import Evaluation, EvaluationStatus, Score, ScoreOutcome
from runs.costs import CostTotal
from runs.models import Response, ResponseStatus, Run

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
LEASE_SECONDS = 60.0
SWEEP_SECONDS = 2.0


def _claimable() -> Any:
    free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=timezone.now())
    return Evaluation.objects.filter(free, status__in=(EvaluationStatus.PENDING, EvaluationStatus.RUNNING))


def _lease_end() -> datetime.datetime:
    return timezone.now() + datetime.timedelta(seconds=LEASE_SECONDS)


def evaluation_claim(evaluation_id: int, *, owner: str) -> bool:
    return bool(_claimable().filter(pk=evaluation_id).update(status=EvaluationStatus.RUNNING, lease_owner=owner,
                                                             lease_expires_at=_lease_end()))


def _needs(checks: list[Check]) -> tuple[bool, bool]:
    """(steps, figures): whether any check reads a step's output, or the cost or finish reason."""
    flat: list[Check] = []
    stack = list(checks)
    while stack:
        check = stack.pop()
        flat.append(check)
        stack.extend(check.children)
    return any(c.step for c in flat), any(c.kind in ("cost", "finish-reason") for c in flat)


def _subjects(scores: list[dict[str, Any]], checks: list[Check]) -> dict[int, Subject]:
    run_ids = [s["run_id"] for s in scores]
    subjects = {run["id"]: Subject(output=run["output"], output_json=run["output_json"], latency_ms=run["latency_ms"],
                                   variables=dict(run["inputs"] or {}))
                for run in Run.objects.filter(pk__in=run_ids).values("id", "output", "output_json", "latency_ms",
                                                                     "inputs")}
    for score in scores:
        subject = subjects.get(score["run_id"])
        if subject is not None:
            subject.variables["expected"] = score["expected"]
    steps, figures = _needs(checks)
    if steps or figures:
        _add_steps(subjects, run_ids, with_outputs=steps)
    return subjects


def _add_steps(subjects: dict[int, Subject], run_ids: list[int], *, with_outputs: bool) -> None:
    """Each subject's step outputs (by output key), last finish reason and total cost (when known in one currency)."""
    fields = ["run_id", "index", "output_key", "finish_reason", "cost_nano", "cost_currency", "status"]
    if with_outputs:
        fields += ["output", "output_json"]
    costs: dict[int, CostTotal] = {}
    for response in Response.objects.filter(run_id__in=run_ids).order_by("run_id", "index").values(*fields):
        subject = subjects.get(response["run_id"])
        if subject is None:
            continue
        if with_outputs:
            json_output = response["output_json"]
            subject.steps[response["output_key"]] = response["output"] if json_output is None else json_output
        subject.finish_reason = response["finish_reason"]
        if response["status"] != ResponseStatus.COPIED:
            costs.setdefault(response["run_id"], CostTotal()).add(nano=response["cost_nano"],
                                                                  currency=response["cost_currency"])
    for run_id, total in costs.items():
        amounts = total.amounts
        if not total.unpriced and len(amounts) <= 1:
            subjects[run_id].cost = next(iter(amounts.values()), Decimal(0))


def evaluation_batch(evaluation_id: int, *, owner: str, size: int = BATCH_SIZE) -> bool:
    """Score one batch of pending subjects; True while more remain. False also when the lease is lost."""
    with transaction.atomic():
        if not Evaluation.objects.filter(pk=evaluation_id, lease_owner=owner).update(lease_expires_at=_lease_end()):
            return False
        evaluation = Evaluation.objects.get(pk=evaluation_id)
        checks = compile_assertions(evaluation.assertions)
        pending = list(Score.objects.filter(evaluation_id=evaluation_id, outcome=ScoreOutcome.PENDING)
                       .order_by("id").values("id", "run_id", "expected")[:size])
        if not pending:
            Evaluation.objects.filter(pk=evaluation_id, lease_owner=owner).update(
                status=EvaluationStatus.DONE, lease_owner="", lease_expires_at=None, finished_at=timezone.now())
            return False
        subjects = _subjects(pending, checks)
        scored: list[Score] = []
        counts = {ScoreOutcome.PASS: 0, ScoreOutcome.FAIL: 0, ScoreOutcome.ERROR: 0}
        for row in pending:
            subject = subjects.get(row["run_id"])
            if subject is None:  # the run is gone: nothing to score
                score = Score(id=row["id"], evaluation_id=evaluation_id, run_id=row["run_id"], expected=row["expected"],
                              outcome=ScoreOutcome.ERROR, score=None, reason="The run was deleted.", results=[])
            else:
                verdict = evaluate(checks, subject)
                score = Score(id=row["id"], evaluation_id=evaluation_id, run_id=row["run_id"], expected=row["expected"],
                              outcome=verdict.outcome,
                              score=None if verdict.outcome == ScoreOutcome.ERROR else round(verdict.score, 6),
                              reason=verdict.reason[:2000], results=[r.as_json() for r in verdict.results])
            counts[score.outcome] += 1
            scored.append(score)
        # The pending rows are written again, scored, with their ids: one DELETE and one INSERT per batch
        # (bulk_update builds a CASE per row and field, twenty times slower; docs/performance.md).
        raw_delete(Score.objects.filter(pk__in=[row["id"] for row in pending]))
        Score.objects.bulk_create(scored, batch_size=500)
        evaluation.scored += len(scored)
        evaluation.passed += counts[ScoreOutcome.PASS]
        evaluation.failed += counts[ScoreOutcome.FAIL]
        evaluation.errors += counts[ScoreOutcome.ERROR]
        evaluation.save(update_fields=["scored", "passed", "failed", "errors"])
    return True


def evaluation_run(evaluation_id: int, *, owner: str) -> None:
    """Score an evaluation to the end (or until the lease is lost)."""
    try:
        while evaluation_batch(evaluation_id, owner=owner):
            pass
    except Exception as exc:
        logger.exception("evaluation %s failed", evaluation_id)
        Evaluation.objects.filter(pk=evaluation_id, lease_owner=owner).update(
            status=EvaluationStatus.FAILED, error=str(exc)[:2000], lease_owner="", lease_expires_at=None,
            finished_at=timezone.now())


def evaluations_work(*, owner: str) -> int:
    """Every evaluation with pending work, one after the other. Returns how many were worked on."""
    close_old_connections()
    worked = 0
    try:
        for evaluation_id in list(_claimable().order_by("id").values_list("id", flat=True)[:100]):
            if evaluation_claim(evaluation_id, owner=owner):
                evaluation_run(evaluation_id, owner=owner)
                worked += 1
    finally:
        close_old_connections()
    return worked


class _Embedded:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.event: asyncio.Event | None = None

    async def supervise(self) -> None:
        """The executor's companion: work pending evaluations now, when woken, and every few seconds."""
        from asgiref.sync import sync_to_async

        from runs.engine.runner import new_owner

        self.loop, self.event = asyncio.get_running_loop(), asyncio.Event()
        work = sync_to_async(evaluations_work, thread_sensitive=False)
        try:
            while True:
                self.event.clear()
                try:
                    await work(owner=new_owner("embedded:evaluations:"))
                except Exception:
                    logger.exception("scoring evaluations failed")
                try:
                    await asyncio.wait_for(self.event.wait(), timeout=SWEEP_SECONDS)
                except TimeoutError:
                    pass
        finally:
            self.loop = self.event = None

    def wake(self) -> None:
        loop, event = self.loop, self.event
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)


embedded = _Embedded()


def wake() -> None:
    if settings.RUNS_BACKEND == "procrastinate":
        from evaluations import tasks

        tasks.defer_work()
    else:
        embedded.wake()
