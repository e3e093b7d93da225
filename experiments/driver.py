"""The experiment driver: starts cells as capacity frees and ends the experiment when all are done.

`tick(experiment_id)` is one pass, one short transaction, the same in every mode. It takes the
experiment row's lock first (an UPDATE of `ticks`: PostgreSQL's row lock, SQLite's write lock), so
two drivers of one experiment (a worker thought dead that comes back) take turns and never start
one cell twice or pass the concurrency cap. In that transaction it
1. copies the figures of cells whose run has ended (status, latency, tokens, cost) and adds them up;
2. stops the experiment when its budget is spent;
3. starts queued cells up to the concurrency cap: each gets a new run (queued, its inputs from the
   case through the mapping) in the same statement group that marks the cell running;
4. ends the experiment when nothing is queued or running.
A run started here executes as any run does, so a crash loses nothing: its steps resume from the
ledger, and the next tick (of whichever process drives next) picks up where this one committed.

Who ticks: in embedded mode, a task per active experiment on the executor's loop, woken when one of
its runs ends (and every few seconds), which executes the cells' runs behind a gate of the experiment's
concurrency and so may start cells ahead (`tick`'s `gated`); in distributed mode, the Procrastinate task
`experiments.drive` (experiments/tasks.py), one per experiment at a time, which polls; in the CLI's
embedded mode (`manage.py run_experiment`), `drive_here`, which executes the cells' runs itself.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from core.sql import insert_copies
from evaluations.services import subjects_add
from experiments import events
from experiments.models import ACTIVE_EXPERIMENT_STATUSES, Cell, CellStatus, Experiment, ExperimentStatus
from releases.cache import release_cached
from releases.models import Release
from runs.costs import run_costs
from runs.engine import ledger
from runs.engine.ledger import Claim, Finished
from runs.models import ACTIVE_STATUSES, FINAL_STATUSES, Run, RunStatus
from runs.services import resolve_inputs, run_cancel

logger = logging.getLogger(__name__)

SWEEP_SECONDS = 1.0  # how often an embedded server looks for experiments made elsewhere (the CLI, a script)
POLL_SECONDS = 0.25  # distributed: how often a driver looks at its runs

RUN_TO_CELL = {RunStatus.SUCCEEDED: CellStatus.SUCCEEDED, RunStatus.FAILED: CellStatus.FAILED,
               RunStatus.CANCELLED: CellStatus.CANCELLED, RunStatus.BUDGET_REACHED: CellStatus.SKIPPED}


@dataclass
class Tick:
    started: list[int] = field(default_factory=list)  # runs made now: to dispatch
    running: list[int] = field(default_factory=list)  # runs of cells running before this tick
    claims: dict[int, Claim | Finished] = field(default_factory=dict)  # started runs' first steps, when asked
    final: bool = False
    progress: dict[str, Any] | None = None
    concurrency: int = 0  # the experiment's cap


def cell_inputs(mapping: dict[str, dict[str, Any]], case_inputs: dict[str, Any], declared: list[dict[str, Any]]
                ) -> dict[str, Any]:
    """A cell's run inputs: each input the release declares, from its mapped column or constant.
    ValidationError when the case lacks a value for an input with no default."""
    names = {item["name"] for item in declared}
    given: dict[str, Any] = {}
    for name, target in mapping.items():
        if name not in names:
            continue
        if "value" in target:
            given[name] = target["value"]
        elif target["column"] in case_inputs:
            given[name] = case_inputs[target["column"]]
    return resolve_inputs(None, given, declared_inputs=declared)  # type: ignore[arg-type]


def _cells_update(fields: list[str], rows: list[tuple[Any, ...]]) -> None:
    """One UPDATE statement run for many cells (`rows`: the fields' values, then the cell's id). The ORM's
    update per cell and bulk_update's CASE expressions cost several times the statements, on the thread
    the engine's steps commit on (docs/performance.md, "Experiments")."""
    if not rows:
        return
    quote = connection.ops.quote_name
    sets = ", ".join(f"{quote(Cell._meta.get_field(name).column)} = %s" for name in fields)
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {quote(Cell._meta.db_table)} SET {sets} WHERE {quote(Cell._meta.pk.column)} = %s",
                           rows)


FINISH_FIELDS = ["status", "latency_ms", "prompt_tokens", "completion_tokens", "cost_nano", "cost_currency", "error",
                 "finished_at"]


def _finish_cells(experiment: Experiment, ended: list[tuple[int, int | None, Any, Any]], now: Any) -> None:
    """Copy the figures of the runs that ended (cells: id, run id, the case's expected and own assertions)
    to their cells and add them to the experiment; the succeeded ones are the current evaluation's
    subjects from now."""
    if not ended:
        return
    runs = {row["id"]: row for row in Run.objects.filter(pk__in=[run_id for _, run_id, _, _ in ended]).values(
        "id", "status", "latency_ms", "prompt_tokens", "completion_tokens", "error")}
    costs = run_costs([run_id for _, run_id, _, _ in ended if run_id is not None])
    currency = experiment.cost_currency
    to_score: list[tuple[int, Any, Any]] = []
    finished_at = connection.ops.adapt_datetimefield_value(now)
    updates: list[tuple[Any, ...]] = []
    for cell_id, run_id, expected, own in ended:
        run = runs.get(run_id) if run_id is not None else None
        if run is None:  # its run was deleted under it
            Cell.objects.filter(pk=cell_id).update(status=CellStatus.FAILED, error="Its run was deleted.",
                                                   finished_at=now)
            experiment.failed += 1
            continue
        status = RUN_TO_CELL[run["status"]]
        cost = costs[run_id]
        amounts = {c: n for c, n in cost.nano.items() if c}
        nano: int | None = None
        cell_currency = ""
        if not cost.unpriced and len(amounts) <= 1:
            cell_currency, nano = next(iter(amounts.items()), (currency, 0))
            if not currency:
                currency = experiment.cost_currency = cell_currency
        if nano is not None and cell_currency == currency:
            experiment.cost_nano += nano
        else:
            experiment.unpriced += 1
        updates.append((str(status), run["latency_ms"], run["prompt_tokens"], run["completion_tokens"], nano, cell_currency,
                        run["error"][:2000], finished_at, cell_id))
        experiment.prompt_tokens += run["prompt_tokens"]
        experiment.completion_tokens += run["completion_tokens"]
        setattr(experiment, status, getattr(experiment, status) + 1)
        if status == CellStatus.SUCCEEDED and (experiment.assertions or own):  # something to check
            to_score.append((run_id, expected, own))
        if run["status"] == RunStatus.BUDGET_REACHED and experiment.status == ExperimentStatus.RUNNING:
            experiment.stop_reason = "budget"
    _cells_update(FINISH_FIELDS, updates)
    experiment.running -= len(ended)
    if to_score and experiment.evaluation_id is not None:
        subjects_add(evaluation_id=experiment.evaluation_id, subjects=to_score)


def cells_stop(experiment: Experiment, reason: str, now: Any) -> None:
    """Stop starting cells (in the caller's transaction, which saves the experiment's counters): queued
    ones end now, running ones have their runs cancelled; the experiment ends when the last has."""
    ending = CellStatus.SKIPPED if reason == "budget" else CellStatus.CANCELLED
    stopped = Cell.objects.filter(experiment=experiment, status=CellStatus.QUEUED).update(status=ending, finished_at=now)
    experiment.queued -= stopped
    setattr(experiment, ending, getattr(experiment, ending) + stopped)
    experiment.status, experiment.stop_reason = ExperimentStatus.STOPPING, reason
    running = Cell.objects.filter(experiment=experiment, status=CellStatus.RUNNING, run__isnull=False).order_by()
    for run in Run.objects.filter(pk__in=running.values("run_id"), status__in=ACTIVE_STATUSES):
        run_cancel(run=run)


def _start_cells(experiment: Experiment, capacity: int, now: Any, owners: Any = None,
                 claims: dict[int, Claim | Finished] | None = None) -> list[int]:
    """Start up to `capacity` queued cells: a run each, inserted in one statement per variant. With
    `owners` (a function making lease owners: the embedded driver, which executes them itself), each
    run is inserted with its first step claimed, and its claim put in `claims`."""
    # Plain rows, not model instances: the driver's pass runs on the thread where steps commit.
    cells = list(Cell.objects.filter(experiment=experiment, status=CellStatus.QUEUED).order_by("id").values_list(
        "id", "position", "tries", "variant__release_id", "variant__release__content_hash", "variant__label",
        "item__inputs")[:capacity])
    if not cells:
        return []
    remaining = None
    if experiment.budget_nano is not None:
        remaining = max(experiment.budget_nano - experiment.cost_nano, 0)
    # Per variant: the cells starting and their runs' inputs (a run differs from its variant's others only there).
    starting: dict[tuple[Release, str], list[tuple[int, int, dict[str, Any]]]] = {}
    for cell_id, position, tries, release_id, content_hash, label, case_inputs in cells:
        release = release_cached(release_id, content_hash)
        try:
            inputs = cell_inputs(experiment.mapping, case_inputs, release.snapshot.get("inputs") or [])
        except ValidationError as exc:
            Cell.objects.filter(pk=cell_id).update(status=CellStatus.FAILED, finished_at=now,
                                                   error=f"Case #{position + 1}: " + " ".join(exc.messages))
            experiment.failed += 1
            experiment.queued -= 1
            continue
        starting.setdefault((release, label), []).append((cell_id, tries, inputs))
    started: list[int] = []
    updates: list[tuple[Any, ...]] = []
    for (release, label), group in starting.items():
        steps = release.snapshot["steps"]
        template = Run(workflow_id=experiment.workflow_id, workflow_name=experiment.workflow.name, release_id=release.pk,
                       label=label, step_count=len(steps), created_by_id=experiment.created_by_id,
                       budget_nano=remaining, budget_currency=experiment.budget_currency or None,
                       cache_mode=experiment.cache_mode)
        varying: dict[str, list[Any]] = {"inputs": [inputs for _, _, inputs in group]}
        if owners is not None:
            # Claimed as inserted: the claim's read and compare-and-set are this INSERT (ledger.claimed_at_insert).
            fields = ledger.claimed_at_insert(owner="", now=now)
            for name, value in fields.items():
                setattr(template, name, value)
            varying["lease_owner"] = [owners() for _ in group]
        # One INSERT of the group's runs, values prepared once (bulk_create was most of the pass: docs/performance.md).
        run_ids = insert_copies(template, varying)
        if owners is not None and claims is not None:
            for run_id, (_, _, inputs), owner in zip(run_ids, group, varying["lease_owner"], strict=True):
                claims[run_id] = ledger.claim_inserted(run_id=run_id, owner=owner, snapshot=release.snapshot,
                                                       inputs=inputs, budget_nano=remaining,
                                                       budget_currency=experiment.budget_currency or None,
                                                       cache_mode=experiment.cache_mode)
        updates += [(str(CellStatus.RUNNING), run_id, tries + 1, cell_id)
                    for (cell_id, tries, _), run_id in zip(group, run_ids, strict=True)]
        started += run_ids
    _cells_update(["status", "run", "tries"], updates)
    experiment.queued -= len(started)
    experiment.running += len(started)
    return started


COUNTERS = ["status", "stop_reason", "queued", "running", "succeeded", "failed", "cancelled", "skipped",
            "cost_nano", "cost_currency", "unpriced", "prompt_tokens", "completion_tokens", "finished_at"]


def tick(*, experiment_id: int, with_running: bool = True, owners: Any = None, gated: bool = False) -> Tick:
    """One pass of the driver (see the module's docstring). `with_running`: also say which runs are
    still under way (a driver that just started, or one that polls, attaches to them). `owners`: the
    caller executes the runs started here, whose first steps are claimed for owners it makes.

    `gated`: the caller executes the runs at most `concurrency` at a time itself (the embedded driver's
    gate), so the pass starts up to `concurrency` more cells, ready to go the moment a slot frees
    instead of a pass later. Not with a budget: each cell's run is capped at what was left when it
    started, which only holds if it starts after the ones before it have spent."""
    with transaction.atomic():
        if not Experiment.objects.filter(pk=experiment_id, status__in=ACTIVE_EXPERIMENT_STATUSES).update(
                ticks=F("ticks") + 1):
            return Tick(final=True)
        experiment = Experiment.objects.select_related("workflow").get(pk=experiment_id)
        before = [getattr(experiment, name) for name in COUNTERS]
        now = timezone.now()
        # Only the cells whose run has ended (or was deleted): a pass reads what changed, not every running cell.
        # Unordered: Cell's default order would have SQLite read all the experiment's cells in that order
        # rather than the few running ones through the (experiment, status, id) index.
        ended = list(Cell.objects.filter(experiment=experiment, status=CellStatus.RUNNING)
                     .filter(Q(run__isnull=True) | Q(run__status__in=FINAL_STATUSES)).order_by()
                     .values_list("id", "run_id", "item__expected", "item__assertions"))
        _finish_cells(experiment, ended, now)
        spent = experiment.budget_nano is not None and experiment.cost_nano >= experiment.budget_nano
        if experiment.status == ExperimentStatus.RUNNING and (spent or experiment.stop_reason == "budget"):
            cells_stop(experiment, "budget", now)
        started: list[int] = []
        claims: dict[int, Claim | Finished] = {}
        if experiment.status == ExperimentStatus.RUNNING:
            # `running` is kept with the cells in these passes' transactions: the count of cells running now.
            capacity = experiment.concurrency - experiment.running
            if gated and experiment.budget_nano is None:
                capacity += experiment.concurrency
            started = _start_cells(experiment, max(capacity, 0), now, owners, claims)
        if experiment.queued == 0 and experiment.running == 0:
            experiment.status = {"cancel": ExperimentStatus.CANCELLED, "budget": ExperimentStatus.BUDGET_REACHED}.get(
                experiment.stop_reason, ExperimentStatus.FINISHED)
            experiment.finished_at = now
        changed = [getattr(experiment, name) for name in COUNTERS] != before
        if changed:
            experiment.save(update_fields=COUNTERS)
        still = list(Cell.objects.filter(experiment=experiment, status=CellStatus.RUNNING, run__isnull=False)
                     .exclude(run_id__in=started).order_by().values_list("run_id", flat=True)) if with_running else []
    return Tick(started=started, running=still, claims=claims, final=experiment.is_finished,
                progress=events.progress(experiment) if changed or started else None,
                concurrency=experiment.concurrency)


def tick_in_thread(experiment_id: int) -> Tick:
    close_old_connections()
    return tick(experiment_id=experiment_id)


def active_ids() -> list[int]:
    close_old_connections()
    return list(Experiment.objects.filter(status__in=ACTIVE_EXPERIMENT_STATUSES).order_by("id")
                .values_list("id", flat=True))


# --- Embedded mode -------------------------------------------------------------------------------

class _Embedded:
    """One driving task per active experiment, on the executor's loop."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.drivers: dict[int, asyncio.Task[None]] = {}
        self.wakes: dict[int, asyncio.Event] = {}

    async def supervise(self) -> None:
        """The executor's companion: start a driver for every active experiment, now and every few seconds."""
        from asgiref.sync import sync_to_async

        self.loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    for experiment_id in await sync_to_async(active_ids, thread_sensitive=False)():
                        self.drive(experiment_id)
                except Exception:
                    logger.exception("looking for active experiments failed")
                await asyncio.sleep(SWEEP_SECONDS)
        finally:
            for task in list(self.drivers.values()):
                task.cancel()
            await asyncio.gather(*self.drivers.values(), return_exceptions=True)
            self.loop = None

    def drive(self, experiment_id: int) -> None:
        """On the loop: drive the experiment (or wake its driver)."""
        if experiment_id in self.drivers:
            self.wakes[experiment_id].set()
            return
        self.wakes[experiment_id] = asyncio.Event()
        task = asyncio.get_running_loop().create_task(self._drive(experiment_id), context=contextvars.Context())
        self.drivers[experiment_id] = task

        def forget(_: Any) -> None:
            self.drivers.pop(experiment_id, None)
            self.wakes.pop(experiment_id, None)

        task.add_done_callback(forget)

    def wake(self, experiment_id: int) -> None:
        """From any thread."""
        from runs.engine import dbthread

        loop = self.loop
        if loop is not None and not loop.is_closed():
            dbthread.call_soon(loop, lambda: self.drive(experiment_id))

    async def _drive(self, experiment_id: int) -> None:
        from runs.engine import dbthread
        from runs.engine.executor import OWNER_PREFIX, executor
        from runs.engine.runner import new_owner

        wake = self.wakes[experiment_id]
        feed = _Feed(wake)
        attached_at = -SWEEP_SECONDS
        gate: asyncio.Semaphore | None = None  # the experiment's concurrency, over the cells started ahead
        while True:
            wake.clear()
            now = asyncio.get_running_loop().time()
            # The runs still under way are asked for at first (runs a previous server started) and now and
            # then; in between, this driver holds every run it started.
            with_running = now - attached_at >= SWEEP_SECONDS
            attached_at = now if with_running else attached_at
            try:
                result = await dbthread.call(tick, experiment_id=experiment_id, with_running=with_running,
                                             owners=lambda: new_owner(OWNER_PREFIX), gated=True)
            except Exception:
                logger.exception("experiment %s: a driver pass failed; trying again", experiment_id)
                await asyncio.sleep(SWEEP_SECONDS)
                continue
            if gate is None and result.concurrency:
                gate = asyncio.Semaphore(result.concurrency)
            feed.passed(result.concurrency)
            for run_id in (*result.started, *result.running):
                feed.hold(run_id, executor.execute(run_id, result.claims.get(run_id), gate))
            if result.progress is not None:
                await events.asend(experiment_id, result.progress)
            if result.final:
                return
            try:
                await asyncio.wait_for(wake.wait(), timeout=SWEEP_SECONDS)
            except TimeoutError:
                pass


class _Feed:
    """When the embedded driver's next pass is due, from the runs it holds as they end.

    With cells waiting behind the gate, a pass every half a gate's worth of ended runs keeps every slot
    fed (the wait holds a whole gate's worth) at half the passes, and so half their fixed cost (the
    experiment row read, locked and saved); with none waiting, a slot would idle until the next pass,
    so it is due at once. Cancel, retry and the sweep wake the driver as before.
    """

    def __init__(self, wake: asyncio.Event) -> None:
        self.wake = wake
        self.executing: set[int] = set()
        self.ended = 0
        self.concurrency = 0

    def passed(self, concurrency: int) -> None:
        self.ended, self.concurrency = 0, concurrency

    def hold(self, run_id: int, task: asyncio.Task[Any]) -> None:
        if run_id not in self.executing:
            self.executing.add(run_id)
            task.add_done_callback(lambda _: self._ended(run_id))

    def _ended(self, run_id: int) -> None:
        self.executing.discard(run_id)
        self.ended += 1
        if len(self.executing) <= self.concurrency or self.ended >= max(self.concurrency // 2, 1):
            self.wake.set()


embedded = _Embedded()


# --- Both modes ----------------------------------------------------------------------------------

def wake(experiment_id: int) -> None:
    """Have the experiment driven now: after it was made, stopped or retried."""
    if settings.RUNS_BACKEND == "procrastinate":
        from experiments import tasks

        tasks.defer_drive(experiment_id)
    else:
        embedded.wake(experiment_id)


async def drive_until_final(experiment_id: int, *, poll: float = POLL_SECONDS, on_tick: Any = None) -> None:
    """Distributed mode (and the CLI there): tick, queue the started runs in one batch, wait, until the experiment ends."""
    from asgiref.sync import sync_to_async

    from runs.engine import tasks as run_tasks

    while True:
        started_at = time.monotonic()
        result = await sync_to_async(tick_in_thread, thread_sensitive=False)(experiment_id)
        await run_tasks.defer_runs_async(result.started)
        if result.progress is not None:
            await events.asend(experiment_id, result.progress)
            if on_tick is not None:
                on_tick(result.progress)
        if result.final:
            return
        await asyncio.sleep(max(poll - (time.monotonic() - started_at), 0.0))


class _Executions:
    """The runs a process executes itself, a task each (drive_here)."""

    def __init__(self, experiment_id: int, poll: float) -> None:
        self.experiment_id, self.poll = experiment_id, poll
        self.tasks: dict[int, asyncio.Task[None]] = {}

    async def _execute(self, run_id: int) -> None:
        from runs.engine import execute_run

        if await execute_run(run_id) is None:
            await asyncio.sleep(self.poll)  # held by another process: look again after a while, not at once

    def start(self, run_ids: Any) -> None:
        for run_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[run_id]
                error = task.exception()
                if error is not None:  # the run stays running in the ledger: the next tick hands it back
                    logger.error("experiment %s: executing run %s failed", self.experiment_id, run_id, exc_info=error)
        for run_id in run_ids:
            if run_id not in self.tasks:
                self.tasks[run_id] = asyncio.get_running_loop().create_task(self._execute(run_id))

    async def wait(self) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks.values(), timeout=self.poll, return_when=asyncio.FIRST_COMPLETED)
        else:
            await asyncio.sleep(self.poll)

    async def close(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


async def drive_here(experiment_id: int, *, poll: float = SWEEP_SECONDS, on_tick: Any = None) -> None:
    """Embedded mode without a server (the CLI): tick, execute the started runs on this loop, until the
    experiment ends. A server driving the same experiment meanwhile is harmless: the tick's row lock
    fences cells and the ledger's lease fences steps (execute_run returns at once on a run held elsewhere)."""
    from asgiref.sync import sync_to_async

    executions = _Executions(experiment_id, poll)
    try:
        while True:
            result = await sync_to_async(tick_in_thread, thread_sensitive=False)(experiment_id)
            executions.start((*result.started, *result.running))
            if result.progress is not None and on_tick is not None:
                on_tick(result.progress)
            if result.final:
                return
            await executions.wait()
    finally:
        await executions.close()


def install() -> None:
    """At start-up (ExperimentsConfig.ready): embedded servers drive experiments beside their executor,
    and pruning old runs keeps the runs of experiments' cells unless asked."""
    from runs import retention
    from runs.engine.executor import add_companion

    add_companion(embedded.supervise)
    retention.keeper_add(retention.Keeper(
        name="experiments", kept=lambda: Cell.objects.filter(run__isnull=False).values("run_id"),
        let_go=lambda ids: Cell.objects.filter(run_id__in=ids).update(run=None)))
