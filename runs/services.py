"""The writes people ask for on runs: starting, cancelling and replaying them.

The engine's own statements (claim, heartbeat, commit, release, finish) are in runs/engine/ledger.py,
whose rule these follow: a run's start, on every run's path, inserts with `insert_instance`; the
rest is the plain ORM.
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core.sql import insert_instance
from releases.services import label_release, release_for_run
from runs.engine import dispatch, events, run_cancel_signal
from runs.engine.ledger import Claim, Finished, lease_is_free, step_claim_in_transaction
from runs.models import ACTIVE_STATUSES, Response, ResponseStatus, Run, RunStatus
from workflows.models import Workflow
from workflows.services import StepData, workflow_problems, workflow_snapshot, workflow_steps


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
def run_start(*, workflow: Workflow, inputs: dict[str, Any], user: AbstractBaseUser | None, label: str = "") -> Run:
    """Validate, snapshot and queue a run of the tree as it stands, or of the release `label` points
    at (whatever the live definitions are now). Nothing reaches an LLM if the inputs are wrong."""
    run = _new_run(workflow=workflow, inputs=inputs, user=user, label=label)
    _after_commit_dispatch(run)
    return run


@transaction.atomic
def run_start_claimed(*, workflow: Workflow, inputs: dict[str, Any], user: AbstractBaseUser | None,
                      owner: str, label: str = "") -> tuple[Run, Claim | Finished | None]:
    """run_start for a caller that executes the run itself (the CLI): its first step is claimed for
    `owner` in the same transaction, and no executor or worker is asked to run it. If the caller
    dies, the lease expires and recovery picks the run up as it would any other."""
    run = _new_run(workflow=workflow, inputs=inputs, user=user, label=label)
    run_id = run.pk
    transaction.on_commit(lambda: events.run_status(run_id, RunStatus.QUEUED))
    return run, step_claim_in_transaction(run_id=run_id, owner=owner)


def _new_run(*, workflow: Workflow, inputs: dict[str, Any], user: AbstractBaseUser | None, label: str = "") -> Run:
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
    run = Run(
        workflow=workflow, workflow_name=workflow.name, inputs=resolved, release_id=release_id,
        label=label, step_count=len(snapshot["steps"]), created_by=author,
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
    copied = list(source.responses.filter(index__lt=from_step).order_by("index"))
    done = [r for r in copied if r.status in (ResponseStatus.SUCCEEDED, ResponseStatus.COPIED)]
    if len(done) != from_step:
        raise ValidationError({"from_step": [f"The source run has no finished response for every step before step {from_step + 1}."]})
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
        source_run=source, replay_from_step=from_step if from_step else None, next_step=from_step,
    )
    Response.objects.bulk_create([
        Response(
            run=run, index=r.index, output_key=r.output_key, payload_name=r.payload_name,
            endpoint_name=r.endpoint_name, model=r.model, messages=r.messages, request_params=r.request_params,
            output=r.output, output_json=r.output_json, reasoning=r.reasoning, finish_reason=r.finish_reason,
            reasoning_tokens=r.reasoning_tokens, cached_tokens=r.cached_tokens, prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens,
            tokens_estimated=r.tokens_estimated, latency_ms=r.latency_ms, ttft_ms=r.ttft_ms,
            attempts=[], status=ResponseStatus.COPIED, copied_from=r.copied_from or r,
        )
        for r in copied
    ])
    _after_commit_dispatch(run)
    return run


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
