"""The writes people ask for on runs: starting, cancelling and replaying them.

The engine's own statements (claim, heartbeat, commit, release, finish) are in runs/engine/ledger.py,
whose rule these follow: a run's start, on every run's path, inserts with `insert_instance`; the
rest is the plain ORM.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core.money import money_text, to_nano, validate_currency
from core.sql import insert_instance
from prices.book import COST_COMPUTED, COST_UNKNOWN, rate_for
from releases.services import label_release, release_for_run
from runs.engine import dispatch, events, run_cancel_signal
from runs.engine.ledger import Claim, Finished, lease_is_free, step_claim_in_transaction
from runs.models import ACTIVE_STATUSES, CacheMode, Response, ResponseStatus, Run, RunStatus
from workflows.graph import is_chain
from workflows.models import Workflow
from workflows.services import StepData, workflow_problems, workflow_snapshot, workflow_steps


class _WorkflowDefault:
    def __repr__(self) -> str:
        return "WORKFLOW_DEFAULT"


# run_start's `budget` when none was asked for: the workflow's default cap. None asks for no cap.
WORKFLOW_DEFAULT: Any = _WorkflowDefault()


def resolve_inputs(workflow: Workflow, inputs: dict[str, Any], *, declared_inputs: list[dict[str, Any]] | None = None
                   ) -> dict[str, Any]:
    """The declared inputs (the workflow's, or a release's) with defaults applied; ValidationError
    lists missing and unknown names."""
    if not isinstance(inputs, dict):
        raise ValidationError({"inputs": ["Inputs must be a JSON object of name: value."]})
    declared = {item["name"]: item for item in (workflow.inputs if declared_inputs is None else declared_inputs) or []}
    errors = []
    unknown = sorted(set(inputs) - set(declared))
    if unknown:
        errors.append(f"Unknown inputs: {', '.join(unknown)}. This workflow takes: {', '.join(declared) or 'none'}.")
    missing = sorted(n for n, item in declared.items() if n not in inputs and item.get("default") is None)
    if missing:
        errors.append(f"Missing inputs: {', '.join(missing)}.")
    if errors:
        raise ValidationError({"inputs": errors})
    return {name: inputs.get(name, item.get("default")) for name, item in declared.items()}


def _raise_problems(workflow: Workflow, steps: list[StepData]) -> None:
    problems = workflow_problems(workflow, steps=steps)
    if problems:
        raise ValidationError({"workflow": [p["message"] if p.get("step") is None else
                                            f"Step {p['step']} ({p['output_key']}): {p['message']}" for p in problems]})


def _after_commit_dispatch(run: Run) -> None:
    run_id = run.pk
    transaction.on_commit(lambda: (events.run_status(run_id, RunStatus.QUEUED), dispatch(run_id)))


@transaction.atomic
def run_start(*, workflow: Workflow, inputs: dict[str, Any], user: AbstractBaseUser | None, label: str = "",
              budget: Any = WORKFLOW_DEFAULT, budget_currency: str | None = None, cache_mode: str | None = None) -> Run:
    """Validate, snapshot and queue a run of the tree as it stands, or of the release `label` points
    at (whatever the live definitions are now). Nothing reaches an LLM if the inputs are wrong.
    `budget` caps its cost (default: the workflow's; None: no cap), in `budget_currency` (default: the workflow's).
    `cache_mode` (runs.models.CacheMode): use the response cache for every step, or for none; None: as each payload says."""
    run = _new_run(workflow=workflow, inputs=inputs, user=user, label=label, budget=budget, budget_currency=budget_currency,
                   cache_mode=cache_mode)
    _after_commit_dispatch(run)
    return run


@transaction.atomic
def run_start_claimed(*, workflow: Workflow, inputs: dict[str, Any], user: AbstractBaseUser | None,
                      owner: str, label: str = "", budget: Any = WORKFLOW_DEFAULT,
                      budget_currency: str | None = None, cache_mode: str | None = None,
                      ) -> tuple[Run, Claim | Finished | None]:
    """run_start for a caller that executes the run itself (the CLI): its first step is claimed for
    `owner` in the same transaction, and no executor or worker is asked to run it. If the caller
    dies, the lease expires and recovery picks the run up as it would any other."""
    run = _new_run(workflow=workflow, inputs=inputs, user=user, label=label, budget=budget,
                   budget_currency=budget_currency, cache_mode=cache_mode)
    run_id = run.pk
    transaction.on_commit(lambda: events.run_status(run_id, RunStatus.QUEUED))
    return run, step_claim_in_transaction(run_id=run_id, owner=owner)


def cache_mode_check(cache_mode: str | None) -> None:
    """A run's (or an experiment's) use of the response cache is one of CacheMode, or None (as each payload says)."""
    if cache_mode not in (None, *CacheMode.values):
        raise ValidationError({"cache_mode": [f"“{cache_mode}” is not a cache choice: use, off, or none "
                                              "(as each payload says)."]})


def run_budget(*, workflow: Workflow, steps: list[dict[str, Any]], budget: Any = WORKFLOW_DEFAULT,
               currency: str | None = None) -> tuple[int | None, str | None]:
    """The cap a run starts with, as (billionths, currency): the one asked for (None: no cap), else
    the workflow's. ValidationError (by field) when it is not an amount, or cannot be checked against
    the steps' prices: a step with no price, or priced in another currency (a total never mixes currencies)."""
    if budget is WORKFLOW_DEFAULT:
        if currency and currency != workflow.budget_currency:
            raise ValidationError({"budget_currency": [f"Give the budget with its currency: the workflow's default cap "
                                                       f"is in {workflow.budget_currency}."]})
        budget, currency = workflow.budget, workflow.budget_currency
    if budget is None or budget == "":
        return None, None
    try:
        amount = Decimal(str(budget))
    except InvalidOperation:
        raise ValidationError({"budget": [f"“{budget}” is not an amount of money."]}) from None
    if not amount.is_finite() or amount < 0:
        raise ValidationError({"budget": ["A budget is an amount of zero or more."]})
    currency = currency or workflow.budget_currency
    try:
        validate_currency(currency)
    except ValidationError as exc:
        raise ValidationError({"budget_currency": exc.messages}) from None
    now = timezone.now()
    for index, step in enumerate(steps):
        rate = rate_for(step["payload"].get("endpoint_id"), step["payload"]["model"], now)
        where = f"Step {index + 1} ({step['output_key']})"
        if rate.source == COST_UNKNOWN:
            raise ValidationError({"budget": [f"{where}: {rate.basis} A cap cannot be checked without it: "
                                              "add a price, or start without a budget."]})
        if rate.source == COST_COMPUTED and rate.currency != currency:
            raise ValidationError({"budget_currency": [
                f"{where} is priced in {rate.currency}; a cap of {money_text(to_nano(amount), currency)} "
                "cannot be checked against it. Use the same currency."]})
    return to_nano(amount), currency


def _new_run(*, workflow: Workflow, inputs: dict[str, Any], user: AbstractBaseUser | None, label: str = "",
             budget: Any = WORKFLOW_DEFAULT, budget_currency: str | None = None, cache_mode: str | None = None) -> Run:
    cache_mode_check(cache_mode)
    author = user if user and user.is_authenticated else None
    if label:
        release = label_release(workflow=workflow, name=label)
        snapshot, release_id = release.snapshot, release.pk
        resolved = resolve_inputs(workflow, inputs, declared_inputs=snapshot["inputs"])
    else:
        resolved = resolve_inputs(workflow, inputs)
        steps = workflow_steps(workflow)
        _raise_problems(workflow, steps)
        snapshot = workflow_snapshot(workflow, steps=steps)
        release_id = release_for_run(workflow=workflow, snapshot=snapshot, user=author)
    cap, currency = run_budget(workflow=workflow, steps=snapshot["steps"], budget=budget, currency=budget_currency)
    run = Run(
        workflow=workflow, workflow_name=workflow.name, inputs=resolved, release_id=release_id,
        label=label, step_count=len(snapshot["steps"]), created_by=author, budget_nano=cap, budget_currency=currency,
        cache_mode=cache_mode,
    )
    insert_instance(run)
    return run


@transaction.atomic
def run_replay(*, source: Run, user: AbstractBaseUser | None, from_step: int = 0,
               inputs: dict[str, Any] | None = None) -> Run:
    """A new run of the source's workflow; steps before `from_step` are copied, not called again."""
    workflow = source.workflow
    if workflow is None:
        raise ValidationError({"workflow": ["The source run's workflow was deleted."]})
    resolved = resolve_inputs(workflow, source.inputs if inputs is None else {**source.inputs, **inputs})
    steps = workflow_steps(workflow)
    _raise_problems(workflow, steps)
    snapshot = workflow_snapshot(workflow, steps=steps)
    steps = snapshot["steps"]
    if not 0 <= from_step < len(steps):
        raise ValidationError({"from_step": [f"Must be a step index from 0 to {len(steps) - 1}."]})
    if is_chain(steps):
        copied = list(source.responses.filter(index__lt=from_step).order_by("index"))
        done = [r for r in copied if r.status in (ResponseStatus.SUCCEEDED, ResponseStatus.COPIED)]
        if len(done) != from_step:
            raise ValidationError({"from_step": [f"The source run has no finished response for every step before step {from_step + 1}."]})
    else:
        copied = _flow_copies(source, steps, from_step)
    for response in copied:
        if response.output_key != steps[response.index]["output_key"]:
            raise ValidationError({"from_step": [
                f"Step {response.index + 1} is now '{steps[response.index]['output_key']}', "
                f"the source run's was '{response.output_key}': replay from an earlier step."]})
    author = user if user and user.is_authenticated else None
    run = Run.objects.create(
        workflow=workflow, workflow_name=workflow.name, inputs=resolved,
        release_id=release_for_run(workflow=workflow, snapshot=snapshot, user=author),
        step_count=len(steps), created_by=author,
        source_run=source, replay_from_step=from_step if from_step else None,
        # A chain resumes at from_step; a flow's next_step counts its ended steps (runs.engine.flow).
        next_step=from_step if is_chain(steps) else sum(1 for r in copied if r.item == 0),
        budget_nano=source.budget_nano, budget_currency=source.budget_currency, cache_mode=source.cache_mode,
    )
    Response.objects.bulk_create([
        Response(
            run=run, index=r.index, output_key=r.output_key, payload_name=r.payload_name,
            endpoint_name=r.endpoint_name, model=r.model, messages=r.messages, request_params=r.request_params,
            output=r.output, output_json=r.output_json, reasoning=r.reasoning, finish_reason=r.finish_reason,
            reasoning_tokens=r.reasoning_tokens, cached_tokens=r.cached_tokens, prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens,
            tokens_estimated=r.tokens_estimated, latency_ms=r.latency_ms, ttft_ms=r.ttft_ms, item=r.item,
            item_value=r.item_value, attempts=[], copied_from=r.copied_from or r,
            status=ResponseStatus.FAILED if r.status == ResponseStatus.FAILED else ResponseStatus.COPIED,
            # Not called again: this run paid nothing for it.
            cost_nano=0, cost_source=COST_COMPUTED, cost_note=f"Copied from run {r.run_id}: not called again.",
        )
        for r in copied
    ])
    _after_commit_dispatch(run)
    return run


def _flow_copies(source: Run, steps: list[dict[str, Any]], from_step: int) -> list[Response]:
    """What a replay of a flow copies: every step that neither is `from_step` nor reads it (through
    any chain of steps), if the source finished it, with its map items. The rest runs again."""
    rerun = {from_step}
    for index in range(from_step + 1, len(steps)):
        if rerun.intersection(steps[index].get("needs", [index - 1])):
            rerun.add(index)
    rows = [r for r in source.responses.order_by("index", "item") if r.index not in rerun]
    finished = {r.index for r in rows if r.item == 0 and r.status in FINISHED_STEP_STATUSES}
    return [r for r in rows if r.index in finished]


# A source run's step that a replay may copy instead of running it again.
FINISHED_STEP_STATUSES = (ResponseStatus.SUCCEEDED, ResponseStatus.COPIED, ResponseStatus.SKIPPED)


def run_cancel(*, run: Run) -> Run:
    """Ask a run to stop. A run nobody holds is cancelled at once; a held one by its holder."""
    now = timezone.now()
    with transaction.atomic():
        stopped = Run.objects.filter(lease_is_free(now), pk=run.pk, status__in=ACTIVE_STATUSES).update(
            cancel_requested=True, status=RunStatus.CANCELLED, finished_at=now, error="Cancelled by a user.",
            lease_owner="", lease_expires_at=None,
        )
        if not stopped:
            Run.objects.filter(pk=run.pk, status__in=(RunStatus.QUEUED, RunStatus.RUNNING)).update(
                cancel_requested=True, status=RunStatus.CANCELLING)
    run.refresh_from_db()
    run_id, status = run.pk, run.status
    if stopped:
        transaction.on_commit(lambda: events.run_finished(run_id, status))
    elif status == RunStatus.CANCELLING:
        transaction.on_commit(lambda: (events.run_status(run_id, status), run_cancel_signal(run_id)))
    return run
