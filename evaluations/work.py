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
import json
import logging
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import close_old_connections, transaction
from django.db.models import Q
from django.utils import timezone

from core.internals.django_raw_delete import raw_delete
from evaluations.checks import (
    PENDING,
    Check,
    CheckProblem,
    Subject,
    Verdict,
    compile_assertions,
    evaluate,
    flatten,
    judge_checks,
    metric_counts,
)
from evaluations.models import Evaluation, EvaluationStatus, Score, ScoreOutcome
from evaluations.services import run_checks_collect
from runs.costs import CostTotal
from runs.models import FINAL_STATUSES, Response, ResponseStatus, Run, RunStatus
from runs.services import run_start
from workflows.models import Workflow

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
MAX_JUDGING = 50  # an evaluation's subjects waiting on judges at once: judges' runs start as these end
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
    flat = list(flatten(checks))
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


def _verdict_of(run: dict[str, Any] | None, run_id: int) -> dict[str, Any]:
    """A judge run's verdict: its structured output {pass, score, reason}, or why there is none."""
    if run is None:
        return {"error": f"The judge's run {run_id} was deleted."}
    if run["status"] != RunStatus.SUCCEEDED:
        return {"error": f"The judge's run {run_id} {run['status']}: {run['error'][:500]}".rstrip(": ")}
    answer = run["output_json"]
    if not isinstance(answer, dict) or not isinstance(answer.get("pass"), bool):
        return {"error": f"The judge's run {run_id} answered without a true/false `pass`."}
    return answer


class _Judges:
    """The judge workflows of one batch, looked up once; starting a judge's run for one check."""

    def __init__(self) -> None:
        self.workflows: dict[str, Workflow | None] = {}

    def start(self, check: Check, subject: Subject) -> int | dict[str, Any]:
        """The judge run started for the check (its id), or the error verdict that stands in for it."""
        name = check.judge or ""
        if name not in self.workflows:
            self.workflows[name] = Workflow.objects.filter(name=name).first()
        workflow = self.workflows[name]
        if workflow is None:
            return {"error": f"There is no judge workflow named “{name}” (manage.py seed_judges makes the defaults)."}
        try:
            asked = check.judge_inputs(subject)
        except CheckProblem as exc:
            return {"error": str(exc)}
        declared = {item["name"] for item in workflow.inputs or []}
        try:
            # The judge's call goes through the engine like any run: rate limits, retries, cost, crash safety.
            return run_start(workflow=workflow, inputs={k: v for k, v in asked.items() if k in declared}, user=None,
                             budget=None).pk
        except ValidationError as exc:
            return {"error": f"The judge “{name}” could not start: {' '.join(exc.messages)}"}


class _CaseChecks:
    """Cases' own assertions, compiled once per distinct list in a batch (numbered "row.1", ...)."""

    def __init__(self) -> None:
        self.compiled: dict[str, list[Check]] = {}

    def of(self, specs: list[dict[str, Any]] | None) -> list[Check]:
        if not specs:
            return []
        key = json.dumps(specs, sort_keys=True)
        if key not in self.compiled:
            self.compiled[key] = compile_assertions(specs, field_name="assert", index_prefix="row.")
        return self.compiled[key]

    def all(self, rows: list[dict[str, Any]]) -> list[Check]:
        return [check for row in rows for check in self.of(row["assertions"])]


def _scored(row: dict[str, Any], evaluation_id: int, verdict: Verdict | None, judges: dict[str, int]) -> Score:
    score = Score(id=row["id"], evaluation_id=evaluation_id, run_id=row["run_id"], expected=row["expected"],
                  assertions=row["assertions"], judges=judges)
    if verdict is None:  # the run is gone: nothing to score
        score.outcome, score.reason, score.results = ScoreOutcome.ERROR, "The run was deleted.", []
        return score
    score.outcome = ScoreOutcome.JUDGING if verdict.outcome == PENDING else verdict.outcome
    score.score = round(verdict.score, 6) if verdict.outcome in (ScoreOutcome.PASS, ScoreOutcome.FAIL) else None
    score.reason = verdict.reason[:2000]
    score.results = [r.as_json() for r in verdict.results]
    for result in score.results:
        if result["index"] in judges:
            result["judge_run_id"] = judges[result["index"]]
    return score


def _judged(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[int, dict[str, dict[str, Any]]]]:
    """Of scores waiting on judges, those whose judges have all finished, with the verdicts by index."""
    run_ids = {run_id for row in rows for run_id in row["judges"].values() if isinstance(run_id, int)}
    runs = {run["id"]: run for run in Run.objects.filter(pk__in=run_ids).values("id", "status", "output_json", "error")}
    ready, verdicts = [], {}
    for row in rows:
        judged = {}
        for index, run_id in row["judges"].items():
            if isinstance(run_id, dict):  # an error recorded when the judge could not start
                judged[index] = run_id
                continue
            run = runs.get(run_id)
            if run is not None and run["status"] not in FINAL_STATUSES:
                break
            judged[index] = _verdict_of(run, run_id)
        else:
            ready.append(row)
            verdicts[row["id"]] = judged
    return ready, verdicts


def evaluation_batch(evaluation_id: int, *, owner: str, size: int = BATCH_SIZE) -> str:
    """Score one batch: subjects whose judges have answered, then pending ones (starting judges' runs
    where assertions need them, at most MAX_JUDGING waiting at a time). Returns "more", "waiting"
    (only judges are left to answer), "done", or "lost" (another worker has the lease)."""
    with transaction.atomic():
        if not Evaluation.objects.filter(pk=evaluation_id, lease_owner=owner).update(lease_expires_at=_lease_end()):
            return "lost"
        evaluation = Evaluation.objects.get(pk=evaluation_id)
        checks = compile_assertions(evaluation.assertions)
        fields = ("id", "run_id", "expected", "judges", "assertions")
        waiting = list(Score.objects.filter(evaluation_id=evaluation_id, outcome=ScoreOutcome.JUDGING)
                       .order_by("id").values(*fields)[:MAX_JUDGING])
        ready, verdicts = _judged(waiting)
        room = size if not judge_checks(checks) else max(MAX_JUDGING - (len(waiting) - len(ready)), 0)
        pending = list(Score.objects.filter(evaluation_id=evaluation_id, outcome=ScoreOutcome.PENDING)
                       .order_by("id").values(*fields)[:min(room, size)]) if room else []
        if not ready and not pending:
            if waiting:
                return "waiting"
            Evaluation.objects.filter(pk=evaluation_id, lease_owner=owner).update(
                status=EvaluationStatus.DONE, lease_owner="", lease_expires_at=None, finished_at=timezone.now())
            return "done"
        rows = ready + pending
        own = _CaseChecks()
        subjects = _subjects(rows, checks + own.all(rows))
        judges = _Judges()
        scored: list[Score] = []
        for row in rows:
            subject = subjects.get(row["run_id"])
            started = dict(row["judges"])
            verdict = None
            if subject is not None:
                all_checks = checks + own.of(row["assertions"])
                subject.judged = verdicts.get(row["id"], {})
                verdict = evaluate(all_checks, subject)
                if verdict.outcome == PENDING:
                    for check in judge_checks(all_checks):
                        if check.index not in started:
                            started[check.index] = judges.start(check, subject)
                    subject.judged = {i: r for i, r in started.items() if isinstance(r, dict)}
                    verdict = evaluate(all_checks, subject)
            scored.append(_scored(row, evaluation_id, verdict, started))
        # The rows are written again, scored, with their ids: one DELETE and one INSERT per batch
        # (bulk_update builds a CASE per row and field, twenty times slower; docs/performance.md).
        raw_delete(Score.objects.filter(pk__in=[row["id"] for row in rows]))
        Score.objects.bulk_create(scored, batch_size=500)
        _count(evaluation, scored)
    return "more"


def _count(evaluation: Evaluation, scored: list[Score]) -> None:
    """Add a batch's final outcomes (not those waiting on judges) to the evaluation's counters."""
    final = [score for score in scored if score.outcome in (ScoreOutcome.PASS, ScoreOutcome.FAIL, ScoreOutcome.ERROR)]
    evaluation.scored += len(final)
    evaluation.passed += sum(score.outcome == ScoreOutcome.PASS for score in final)
    evaluation.failed += sum(score.outcome == ScoreOutcome.FAIL for score in final)
    evaluation.errors += sum(score.outcome == ScoreOutcome.ERROR for score in final)
    for score in final:
        metric_counts(score.results, evaluation.metrics)
    evaluation.save(update_fields=["scored", "passed", "failed", "errors", "metrics"])


def evaluation_run(evaluation_id: int, *, owner: str) -> None:
    """Score an evaluation to the end (or until the lease is lost)."""
    try:
        while (state := evaluation_batch(evaluation_id, owner=owner)) == "more":
            pass
        if state == "waiting":  # free it: the next pass (every few seconds) looks at its judges again
            Evaluation.objects.filter(pk=evaluation_id, lease_owner=owner).update(lease_owner="",
                                                                                  lease_expires_at=None)
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
        run_checks_collect()
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
