"""Repricing past steps after a price was added or corrected: `manage.py reprice`, /prices/reprice/, /api/reprice/.

The selection is fixed when it starts: steps (never a replay's copied ones) by creation time, model
(a regular expression over the whole name) and workflow, with an id at most the largest at the start,
so steps that live runs commit later are never touched. Each step is priced as the engine prices it
(prices.book: its endpoint from its run's release, its model, its creation time); a cost the server
reported is kept.

Applying goes in batches by id, each one short transaction that updates the changed responses
(recording the entry each now uses), moves the step rollups of finished runs by the difference, and,
for a job, records its progress. A run still running is locked for the batch, so it cannot become
final in between: its trigger counts the new values when it finishes. So a killed worker's successor
resumes after the last committed batch, and a step is never counted twice. Amounts are integers of
nano per currency, Decimal only when shown; two currencies are never added.
"""
from __future__ import annotations

import datetime
import logging
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import close_old_connections, transaction
from django.db.models import F, Max, Q, QuerySet
from django.utils import timezone

from core.money import from_nano, to_nano
from prices.book import COST_REPORTED, CUT_OFF_NOTE, StepCost, rate_for, step_cost
from prices.models import validate_pattern
from releases.cache import release_cached
from runs.models import FINAL_STATUSES, RepriceJob, Response, ResponseStatus, Run, StepRollup, call_was_made

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
PAUSE_SECONDS = 0.02  # between batches: live runs' commits get the write lock in between
COST_FIELDS = ("cost_nano", "cost_currency", "cost_source", "price_id", "price_version", "cost_note")
STEP_FIELDS = ("id", "run_id", "index", "model", "endpoint_name", "status", "prompt_tokens", "completion_tokens",
               "cached_tokens", "reasoning_tokens", "latency_ms", "attempts", "created_at", *COST_FIELDS)
ROLLUP_SUMS = ("steps", "failed", "prompt_tokens", "completion_tokens", "latency_ms", "cost_nano", "unpriced")


class LeaseLost(Exception):
    """Another worker took the job over (this one was presumed dead): stop without writing."""


@dataclass(frozen=True)
class RepriceScope:
    """Which steps a reprice selects (besides `id <= max id at the start`)."""

    since: datetime.datetime | None = None
    until: datetime.datetime | None = None
    model: str = ""
    workflow: str = ""

    def responses(self) -> QuerySet[Response]:
        steps = Response.objects.exclude(status=ResponseStatus.COPIED)
        if self.since is not None:
            steps = steps.filter(created_at__gte=self.since)
        if self.until is not None:
            steps = steps.filter(created_at__lt=self.until)
        if self.workflow:
            steps = steps.filter(run__workflow_name=self.workflow)
        return steps

    def matches(self, model: str) -> bool:
        return not self.model or re.fullmatch(self.model, model) is not None


def reprice_scope(*, since: datetime.datetime | None = None, until: datetime.datetime | None = None,
                  model: str = "", workflow: str = "") -> RepriceScope:
    """A checked selection. Raises ValidationError naming the field (a bad regular expression: `model`)."""
    problems: dict[str, list[str]] = {}
    model, workflow = (model or "").strip(), (workflow or "").strip()
    if model:
        try:
            validate_pattern(model)
        except ValidationError as exc:
            problems["model"] = exc.messages
    if since is not None and until is not None and until <= since:
        problems["until"] = ["“until” must be later than “since”."]
    if problems:
        raise ValidationError(problems)
    return RepriceScope(since=since, until=until, model=model, workflow=workflow)


class Cost(NamedTuple):
    """A step's cost fields, with "no currency" and "no note" spelled one way."""

    nano: int | None
    currency: str
    source: str | None
    price_id: int | None
    price_version: int | None
    note: str

    @classmethod
    def of_step(cls, step: Response) -> Cost:
        return cls(step.cost_nano, step.cost_currency or "", step.cost_source, step.price_id, step.price_version,
                   step.cost_note or "")

    @classmethod
    def of(cls, cost: StepCost) -> Cost:
        return cls(cost.nano, cost.currency or "", cost.source, cost.price_id, cost.price_version, cost.note or "")


@dataclass
class RepriceTally:
    """What a reprice found: steps, and the selection's cost before and after in nano per currency."""

    examined: int = 0
    changed: int = 0
    before: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)
    unpriced_before: int = 0
    unpriced_after: int = 0
    max_response_id: int = 0

    def count(self, old: Cost, new: Cost) -> None:
        self.examined += 1
        self.changed += old != new
        for totals, cost in ((self.before, old), (self.after, new)):
            if cost.nano is not None and cost.currency:
                totals[cost.currency] = totals.get(cost.currency, 0) + cost.nano
        self.unpriced_before += old.nano is None
        self.unpriced_after += new.nano is None

    @property
    def totals_before(self) -> dict[str, Decimal]:
        return {currency: from_nano(nano) for currency, nano in sorted(self.before.items())}

    @property
    def totals_after(self) -> dict[str, Decimal]:
        return {currency: from_nano(nano) for currency, nano in sorted(self.after.items())}


def _endpoint_id(run: dict[str, Any], index: int) -> int | None:
    steps = release_cached(run["release_id"], run["release__content_hash"]).snapshot.get("steps", [])
    try:
        return steps[index]["payload"]["endpoint_id"]
    except (IndexError, KeyError, TypeError):
        return None


def step_repriced(step: Response, run: dict[str, Any]) -> Cost:
    """What the step costs by the price book now (a reported cost stays as it is)."""
    if step.cost_source == COST_REPORTED or step.cost_note == CUT_OFF_NOTE:
        return Cost.of_step(step)
    rate = rate_for(_endpoint_id(run, step.index), step.model, step.created_at)
    return Cost.of(step_cost(rate, prompt_tokens=step.prompt_tokens, completion_tokens=step.completion_tokens,
                             cached_tokens=step.cached_tokens, reasoning_tokens=step.reasoning_tokens,
                             latency_ms=step.latency_ms,
                             called=call_was_made(status=step.status, attempts=step.attempts,
                                                  prompt_tokens=step.prompt_tokens,
                                                  completion_tokens=step.completion_tokens)))


def _steps(scope: RepriceScope, *, after: int, upto: int, size: int, lock: bool) -> list[Response]:
    steps = scope.responses().filter(id__gt=after, id__lte=upto).order_by("id").only(*STEP_FIELDS)
    if lock:
        steps = steps.select_for_update(no_key=True, of=("self",))
    return list(steps[:size])


def _runs(run_ids: set[int], *, lock: bool) -> dict[int, dict[str, Any]]:
    runs = Run.objects.filter(pk__in=run_ids).order_by("pk")
    if lock:  # on PostgreSQL: a run cannot become final (and fire its trigger) before this batch commits
        runs = runs.select_for_update(no_key=True, of=("self",))
    return {run["id"]: run for run in runs.values("id", "status", "workflow_id", "created_at", "release_id",
                                                  "release__content_hash")}


def _max_response_id() -> int:
    return Response.objects.aggregate(top=Max("id"))["top"] or 0


def reprice_plan(*, scope: RepriceScope, batch_size: int = BATCH_SIZE) -> RepriceTally:
    """The dry run: what applying would change, reading in batches and writing nothing."""
    tally = RepriceTally(max_response_id=_max_response_id())
    after = 0
    while steps := _steps(scope, after=after, upto=tally.max_response_id, size=batch_size, lock=False):
        after = steps[-1].id
        runs = _runs({step.run_id for step in steps}, lock=False)
        for step in steps:
            if scope.matches(step.model):
                tally.count(Cost.of_step(step), step_repriced(step, runs[step.run_id]))
    return tally


# --- applying ------------------------------------------------------------------------------------
RollupKey = tuple[int, datetime.datetime, str, str, str]


def _rollup_move(moves: dict[RollupKey, list[int]], run: dict[str, Any], step: Response, old: Cost, new: Cost) -> None:
    """The step leaves its old rollup row (by currency) and joins its new one, as the trigger counts it."""
    hour = run["created_at"].astimezone(datetime.UTC).replace(minute=0, second=0, microsecond=0)
    counts = (1, int(step.status == ResponseStatus.FAILED), step.prompt_tokens, step.completion_tokens, step.latency_ms)
    for sign, cost in ((-1, old), (1, new)):
        sums = moves[(run["workflow_id"], hour, step.endpoint_name, step.model, cost.currency)]
        for position, value in enumerate((*counts, cost.nano or 0, int(cost.nano is None))):
            sums[position] += sign * value


def _rollups_apply(moves: dict[RollupKey, list[int]]) -> None:
    for (workflow_id, hour, endpoint_name, model, currency), sums in moves.items():
        if not any(sums):
            continue
        key = {"workflow_id": workflow_id, "hour": hour, "endpoint_name": endpoint_name, "model": model,
               "cost_currency": currency}
        changes = {name: F(name) + value for name, value in zip(ROLLUP_SUMS, sums, strict=True) if value}
        if not StepRollup.objects.filter(**key).update(**changes):
            # A negative count here means the rollups disagree with the steps: the batch fails (rebuild_run_stats).
            StepRollup.objects.create(**key, **dict(zip(ROLLUP_SUMS, sums, strict=True)))
        StepRollup.objects.filter(**key, steps=0).delete()


def reprice_batch(*, scope: RepriceScope, after: int, upto: int, size: int = BATCH_SIZE,
                  progress: Callable[[int, RepriceTally], None] | None = None) -> tuple[int | None, RepriceTally]:
    """Reprice the next `size` steps after id `after`, in one transaction. (last id, or None when no step is
    left; the batch's tally). `progress(last id, tally)` runs in the same transaction (a job's record)."""
    tally = RepriceTally(max_response_id=upto)
    with transaction.atomic():
        steps = _steps(scope, after=after, upto=upto, size=size, lock=True)
        if not steps:
            return None, tally
        runs = _runs({step.run_id for step in steps}, lock=True)
        changed: list[Response] = []
        moves: dict[RollupKey, list[int]] = defaultdict(lambda: [0] * len(ROLLUP_SUMS))
        for step in steps:
            if not scope.matches(step.model):
                continue
            old, new = Cost.of_step(step), step_repriced(step, runs[step.run_id])
            tally.count(old, new)
            if old == new:
                continue
            (step.cost_nano, step.cost_currency, step.cost_source, step.price_id, step.price_version,
             step.cost_note) = (new.nano, new.currency or None, new.source, new.price_id, new.price_version, new.note)
            changed.append(step)
            run = runs[step.run_id]
            if run["status"] in FINAL_STATUSES and run["workflow_id"] is not None:
                _rollup_move(moves, run, step, old, new)
        Response.objects.bulk_update(changed, COST_FIELDS)
        _rollups_apply(moves)
        if progress is not None:
            progress(steps[-1].id, tally)
    return steps[-1].id, tally


# --- jobs ----------------------------------------------------------------------------------------
def _wake() -> None:
    """Distributed mode: a worker starts the job now (the periodic task would within seconds anyway)."""
    if settings.RUNS_BACKEND == "procrastinate":
        # Imported here: the engine's tasks import this module, and Procrastinate exists only in this mode.
        from runs.engine import tasks

        tasks.defer_reprice()


def job_scope(job: RepriceJob) -> RepriceScope:
    return RepriceScope(since=job.since, until=job.until, model=job.model_pattern, workflow=job.workflow_name)


@transaction.atomic
def reprice_job_create(*, scope: RepriceScope, user: Any = None, batch_size: int = BATCH_SIZE) -> RepriceJob:
    """A job repricing the selection as it stands now (its last step id is fixed here)."""
    job = RepriceJob(since=scope.since, until=scope.until, model_pattern=scope.model, workflow_name=scope.workflow,
                     batch_size=batch_size, max_response_id=_max_response_id(),
                     created_by=user if user is not None and user.is_authenticated else None)
    job.full_clean()
    job.save()
    transaction.on_commit(_wake)
    return job


def reprice_job_unfinished(*, scope: RepriceScope) -> RepriceJob | None:
    """The oldest job of this very selection not yet done: what running the command again resumes."""
    return (RepriceJob.objects.filter(status__in=[RepriceJob.Status.PENDING, RepriceJob.Status.RUNNING],
                                      since=scope.since, until=scope.until, model_pattern=scope.model,
                                      workflow_name=scope.workflow).order_by("pk").first())


def _claimable() -> QuerySet[RepriceJob]:
    free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=timezone.now())
    return RepriceJob.objects.filter(free, status__in=[RepriceJob.Status.PENDING, RepriceJob.Status.RUNNING])


def _lease_end() -> datetime.datetime:
    return timezone.now() + datetime.timedelta(seconds=settings.REPRICE_LEASE_SECONDS)


def reprice_job_claim(job_id: int, *, owner: str) -> bool:
    """Take a pending job, or one whose holder stopped renewing its lease. False: someone else has it."""
    now = timezone.now()
    claimed = _claimable().filter(pk=job_id).update(status=RepriceJob.Status.RUNNING, lease_owner=owner,
                                                    lease_expires_at=_lease_end())
    RepriceJob.objects.filter(pk=job_id, started_at__isnull=True, lease_owner=owner).update(started_at=now)
    return claimed == 1


def _add(totals: dict[str, str], nano: dict[str, int]) -> dict[str, str]:
    """Decimal strings per currency plus nano per currency: exact (nine places both)."""
    summed = {currency: to_nano(Decimal(amount)) for currency, amount in totals.items()}
    for currency, amount in nano.items():
        summed[currency] = summed.get(currency, 0) + amount
    return {currency: str(from_nano(amount)) for currency, amount in sorted(summed.items())}


def _job_progress(job_id: int, owner: str) -> Callable[[int, RepriceTally], None]:
    def record(last_id: int, tally: RepriceTally) -> None:
        job = RepriceJob.objects.select_for_update().filter(pk=job_id, lease_owner=owner,
                                                            status=RepriceJob.Status.RUNNING).first()
        if job is None:
            raise LeaseLost(f"reprice job {job_id} was taken over")
        job.last_response_id = last_id
        job.examined += tally.examined
        job.changed += tally.changed
        job.unpriced_before += tally.unpriced_before
        job.unpriced_after += tally.unpriced_after
        job.totals_before = _add(job.totals_before, tally.before)
        job.totals_after = _add(job.totals_after, tally.after)
        job.lease_expires_at = _lease_end()
        job.save(update_fields=["last_response_id", "examined", "changed", "unpriced_before", "unpriced_after",
                                "totals_before", "totals_after", "lease_expires_at"])
    return record


def _job_end(job_id: int, owner: str, status: str, error: str = "") -> None:
    RepriceJob.objects.filter(pk=job_id, lease_owner=owner).update(
        status=status, error=error, lease_owner="", lease_expires_at=None, finished_at=timezone.now())


def reprice_job_run(job_id: int, *, owner: str, pause: float = PAUSE_SECONDS,
                    on_batch: Callable[[RepriceJob], None] | None = None) -> RepriceJob:
    """Apply a claimed job from where it stands to the end. Safe to kill at any moment."""
    job = RepriceJob.objects.get(pk=job_id)
    scope, after, record = job_scope(job), job.last_response_id, _job_progress(job_id, owner)
    try:
        while True:
            last, _ = reprice_batch(scope=scope, after=after, upto=job.max_response_id, size=job.batch_size,
                                    progress=record)
            if last is None:
                break
            after = last
            if on_batch is not None:
                on_batch(RepriceJob.objects.get(pk=job_id))
            time.sleep(pause)
        _job_end(job_id, owner, RepriceJob.Status.DONE)
    except LeaseLost:
        logger.warning("reprice job %s: another worker took it over; stopping", job_id)
    except Exception as exc:
        logger.exception("reprice job %s failed", job_id)
        _job_end(job_id, owner, RepriceJob.Status.FAILED, f"{type(exc).__name__}: {exc}")
    return RepriceJob.objects.get(pk=job_id)


def reprice_jobs_work(*, owner_prefix: str = "") -> int:
    """What the executors call periodically: run every job that is pending or whose holder died. Jobs run."""
    close_old_connections()
    ran = 0
    try:
        for job_id in list(_claimable().order_by("pk").values_list("pk", flat=True)[:10]):
            owner = f"{owner_prefix}reprice:{uuid.uuid4().hex[:12]}"
            if reprice_job_claim(job_id, owner=owner):
                reprice_job_run(job_id, owner=owner)
                ran += 1
    finally:
        close_old_connections()
    return ran


def reprice_job_totals(job: RepriceJob) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    return ({c: Decimal(a) for c, a in job.totals_before.items()}, {c: Decimal(a) for c, a in job.totals_after.items()})
