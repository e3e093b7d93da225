"""Every write to runs and responses.

Starting, cancelling and replaying runs, and the step ledger the runner uses: a step is claimed
with a compare-and-set on (next_step, lease) and committed in one short transaction that checks
the lease is still its own. No transaction is ever held across an LLM call.
"""
from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from core.sql import CompiledValues, execute, insert_instance, update_rows
from llm.client import EndpointConfig
from llm.models import Endpoint
from llm.selectors import endpoint_config
from llm.services import capability_learn
from runs import dispatch, events
from runs.models import ACTIVE_STATUSES, Response, ResponseStatus, Run, RunStatus
from workflows.models import Workflow
from workflows.services import StepData, workflow_problems, workflow_snapshot, workflow_steps


# --- starting runs ------------------------------------------------------------------------------
def resolve_inputs(workflow: Workflow, inputs: dict[str, Any]) -> dict[str, Any]:
    """The declared inputs with defaults applied; ValidationError lists missing and unknown names."""
    if not isinstance(inputs, dict):
        raise ValidationError({"inputs": ["Inputs must be a JSON object of name: value."]})
    declared = {item["name"]: item for item in workflow.inputs or []}
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
    transaction.on_commit(lambda: (events.run_status(run_id, RunStatus.QUEUED), dispatch.dispatch(run_id)))


@transaction.atomic
def run_start(*, workflow: Workflow, inputs: dict[str, Any], user: AbstractBaseUser | None) -> Run:
    """Validate, snapshot and queue a run. Nothing reaches an LLM if the inputs are wrong."""
    run = _new_run(workflow=workflow, inputs=inputs, user=user)
    _after_commit_dispatch(run)
    return run


@transaction.atomic
def run_start_claimed(*, workflow: Workflow, inputs: dict[str, Any], user: AbstractBaseUser | None,
                      owner: str) -> tuple[Run, Claim | Finished | None]:
    """run_start for a caller that executes the run itself (the CLI): its first step is claimed for
    `owner` in the same transaction, and no executor or worker is asked to run it. If the caller
    dies, the lease expires and recovery picks the run up as it would any other."""
    run = _new_run(workflow=workflow, inputs=inputs, user=user)
    run_id = run.pk
    transaction.on_commit(lambda: events.run_status(run_id, RunStatus.QUEUED))
    return run, _claim(run_id=run_id, owner=owner)


def _new_run(*, workflow: Workflow, inputs: dict[str, Any], user: AbstractBaseUser | None) -> Run:
    resolved = resolve_inputs(workflow, inputs)
    steps = workflow_steps(workflow)
    _raise_problems(workflow, steps)
    snapshot = workflow_snapshot(workflow, steps=steps)
    run = Run(
        workflow=workflow, workflow_name=workflow.name, inputs=resolved, snapshot=snapshot,
        step_count=len(snapshot["steps"]), created_by=user if user and user.is_authenticated else None,
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
    run = Run.objects.create(
        workflow=workflow, workflow_name=workflow.name, inputs=resolved, snapshot=snapshot,
        step_count=len(steps), created_by=user if user and user.is_authenticated else None,
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
        free = Q(lease_owner="") | Q(lease_expires_at__lt=now)
        stopped = Run.objects.filter(free, pk=run.pk, status__in=ACTIVE_STATUSES).update(
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
        transaction.on_commit(lambda: (events.run_status(run_id, status), dispatch.cancel(run_id)))
    return run


# --- the step ledger ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    """A step this worker owns until its lease expires or is taken over."""

    run_id: int
    index: int
    lease_version: int
    owner: str
    steps: list[dict[str, Any]]
    variables: dict[str, Any]
    endpoint: EndpointConfig | None
    first: bool

    @property
    def step(self) -> dict[str, Any]:
        return self.steps[self.index]

    @property
    def step_count(self) -> int:
        return len(self.steps)


@dataclass(frozen=True)
class Finished:
    run_id: int
    status: str


@dataclass
class StepResult:
    status: str
    messages: list[dict[str, str]] = field(default_factory=list)
    output: str = ""
    output_json: Any = None
    reasoning: str = ""
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    # What the call found out about the server (changes, evidence): stored with the step.
    learned: tuple[dict[str, Any], dict[str, str]] | None = None
    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_estimated: bool = False
    latency_ms: int = 0
    ttft_ms: int | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""


# Endpoint settings change rarely; a step reads them at most this stale.
ENDPOINT_CACHE_SECONDS = 5.0
_endpoint_cache: dict[int, tuple[float, EndpointConfig | None]] = {}


def _endpoint_config(endpoint_id: int) -> EndpointConfig | None:
    cached = _endpoint_cache.get(endpoint_id)
    now = time.monotonic()
    if cached is not None and now - cached[0] < ENDPOINT_CACHE_SECONDS:
        return cached[1]
    endpoint = Endpoint.objects.filter(pk=endpoint_id, enabled=True).first()
    config = endpoint_config(endpoint) if endpoint is not None else None
    _endpoint_cache[endpoint_id] = (now, config)
    return config


def _lease_until() -> datetime.datetime:
    return timezone.now() + datetime.timedelta(seconds=settings.RUNS_LEASE_SECONDS)


def _value(response: dict[str, Any], step: dict[str, Any]) -> Any:
    """What later steps see of a step's answer: its JSON, or its text (with the reasoning, if the payload asks)."""
    if response["output_json"] is not None:
        return response["output_json"]
    if response["reasoning"] and step["payload"].get("pass_reasoning"):
        return f"<think>{response['reasoning']}</think>\n{response['output']}"
    return response["output"]


def _finish(run_id: int, status: str, *, error: str = "") -> Finished | None:
    """Mark a run final (idempotent): only an active run with no live lease changes."""
    now = timezone.now()
    fields: dict[str, Any] = {"status": status, "finished_at": now, "lease_owner": "", "lease_expires_at": None}
    if status == RunStatus.SUCCEEDED:
        last = Response.objects.filter(run_id=run_id).order_by("-index").values("output", "output_json").first()
        if last is not None:
            fields.update(output=last["output"], output_json=last["output_json"])
    if error:
        fields["error"] = error
    changed = Run.objects.filter(Q(lease_owner="") | Q(lease_expires_at__lt=now), pk=run_id,
                                 status__in=ACTIVE_STATUSES).update(**fields)
    return Finished(run_id, status) if changed else None


_run_for_claim = CompiledValues(lambda run_id: Run.objects.filter(pk=run_id).values(
    "status", "next_step", "cancel_requested", "snapshot", "inputs", "started_at",
    "lease_owner", "lease_expires_at", "lease_version")[:1])
_earlier_responses = CompiledValues(lambda run_id, index: Response.objects.filter(run_id=run_id, index__lte=index)
                                    .order_by("index").values("index", "output_key", "output", "output_json", "reasoning"))


def step_claim(*, run_id: int, owner: str) -> Claim | Finished | None:
    """Claim the run's next step for `owner`. None: nothing to do here (finished, or held by another)."""
    with transaction.atomic():
        return _claim(run_id=run_id, owner=owner)


def _claim(*, run_id: int, owner: str) -> Claim | Finished | None:
    found = _run_for_claim.rows(run_id)
    run = found[0] if found else None
    if run is None or run["status"] not in ACTIVE_STATUSES:
        return None
    now = timezone.now()
    if run["lease_owner"] and run["lease_expires_at"] and run["lease_expires_at"] >= now:
        return None
    if run["cancel_requested"]:
        return _finish(run_id, RunStatus.CANCELLED, error="Cancelled by a user.")
    steps = run["snapshot"]["steps"]
    index = run["next_step"]
    if index >= len(steps):
        return _finish(run_id, RunStatus.SUCCEEDED)
    # The compare-and-set: the row must still be as read (same version, step, no live lease).
    lease_version = run["lease_version"] + 1
    if _claim_sql(run_id=run_id, index=index, version=run["lease_version"], owner=owner, now=now) != 1:
        return None
    earlier = [] if index == 0 else _earlier_responses.rows(run_id, index)
    if earlier and earlier[-1]["index"] == index:
        # Already committed (a replay copy, or a commit whose dispatch was lost): just advance.
        Run.objects.filter(pk=run_id, lease_version=lease_version).update(
            next_step=index + 1, lease_owner="", lease_expires_at=None)
        return _claim(run_id=run_id, owner=owner)
    variables = dict(run["inputs"])
    for response in earlier:
        variables[response["output_key"]] = _value(response, steps[response["index"]])
    if earlier:
        variables["previous"] = _value(earlier[-1], steps[earlier[-1]["index"]])
    return Claim(
        run_id=run_id, index=index, lease_version=lease_version, owner=owner, steps=steps, variables=variables,
        endpoint=_endpoint_config(steps[index]["payload"]["endpoint_id"]), first=run["started_at"] is None,
    )


def step_heartbeat(*, claim: Claim) -> tuple[bool, bool]:
    """Check the cancel flag and keep the lease. Returns (still ours, cancel requested).

    The lease is renewed only once half of it is gone, so most heartbeats are one cheap read.
    """
    row = (Run.objects.filter(pk=claim.run_id)
           .values_list("cancel_requested", "lease_owner", "lease_version", "lease_expires_at").first())
    if row is None:
        return False, True
    cancel, owner, version, expires = row
    if owner != claim.owner or version != claim.lease_version:
        return False, bool(cancel)
    half = datetime.timedelta(seconds=settings.RUNS_LEASE_SECONDS / 2)
    if expires is None or expires - timezone.now() < half:
        renewed = Run.objects.filter(pk=claim.run_id, lease_owner=claim.owner, lease_version=claim.lease_version).update(
            lease_expires_at=_lease_until())
        return bool(renewed), bool(cancel)
    return True, bool(cancel)


_claim_sql_by_vendor: dict[str, str] = {}


def _claim_sql(*, run_id: int, index: int, version: int, owner: str, now: datetime.datetime) -> int:
    """The claim's compare-and-set UPDATE: plain SQL, built once (compiling the ORM's costs more than running it)."""
    sql = _claim_sql_by_vendor.get(connection.vendor)
    if sql is None:
        q = connection.ops.quote_name
        sql = _claim_sql_by_vendor[connection.vendor] = (
            f"UPDATE {q(Run._meta.db_table)} SET {q('lease_owner')} = %s, {q('lease_version')} = %s, "
            f"{q('lease_expires_at')} = %s, {q('status')} = %s, {q('started_at')} = COALESCE({q('started_at')}, %s) "
            f"WHERE {q('id')} = %s AND {q('next_step')} = %s AND {q('lease_version')} = %s "
            f"AND {q('cancel_requested')} = %s AND {q('status')} IN (%s, %s, %s) "
            f"AND ({q('lease_owner')} = '' OR {q('lease_expires_at')} < %s)")
    adapt = connection.ops.adapt_datetimefield_value
    params = [owner, version + 1, adapt(_lease_until()), RunStatus.RUNNING.value, adapt(now),
              run_id, index, version, False, *(status.value for status in ACTIVE_STATUSES), adapt(now)]
    return execute(connection, sql, params, lambda cursor: cursor.rowcount)


def _tokens(result: StepResult) -> dict[str, int]:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "latency_ms": result.latency_ms}


def step_commit(*, claim: Claim, result: StepResult) -> tuple[Finished | bool, Claim | None]:
    """Record the step and advance the run, only if the lease is still ours.

    Returns (False, None) when another worker took the step over (this copy is dropped),
    (Finished, None) when this step ended the run, and otherwise (True, the claim of the next
    step): the same update that advances the run keeps the lease for the next step, unless a
    cancel was requested, in which case (True, None) leaves the run to the next claim.
    """
    last = claim.index + 1 >= claim.step_count
    ours = {"id": claim.run_id, "lease_owner": claim.owner, "lease_version": claim.lease_version,
            "next_step": claim.index}
    released: dict[str, Any] = {"lease_owner": "", "lease_expires_at": None}
    final: str | None = None
    if result.status == ResponseStatus.SUCCEEDED:
        released["next_step"] = claim.index + 1
        if last:
            final = RunStatus.SUCCEEDED
            released.update(output=result.output, output_json=result.output_json)
    elif result.status == ResponseStatus.CANCELLED:
        final = RunStatus.CANCELLED
        released["error"] = f"Cancelled by a user during step {claim.index + 1} ({claim.step['output_key']})."
    else:
        final = RunStatus.FAILED
        released["error"] = f"Step {claim.index + 1} ({claim.step['output_key']}) failed: {result.error}"
    if final:
        released.update(status=final, finished_at=timezone.now())
    payload = claim.step["payload"]
    next_claim: Claim | None = None
    try:
        with transaction.atomic():
            advanced = 0
            if final is None:
                # Keep the lease for the next step in the same write, unless a cancel is pending.
                advanced = update_rows(Run, where={**ours, "cancel_requested": False}, increments=_tokens(result),
                                       values={"next_step": claim.index + 1, "lease_version": claim.lease_version + 1,
                                               "lease_expires_at": _lease_until()})
                if advanced:
                    next_index = claim.index + 1
                    output = _value({"output": result.output, "output_json": result.output_json,
                                     "reasoning": result.reasoning}, claim.step)
                    variables = {**claim.variables, claim.step["output_key"]: output, "previous": output}
                    next_claim = Claim(
                        run_id=claim.run_id, index=next_index, lease_version=claim.lease_version + 1,
                        owner=claim.owner, steps=claim.steps, variables=variables,
                        endpoint=_endpoint_config(claim.steps[next_index]["payload"]["endpoint_id"]), first=False,
                    )
            if not advanced:
                advanced = update_rows(Run, where=ours, values=released, increments=_tokens(result))
            if advanced != 1:
                return False, None
            insert_instance(Response(
                run_id=claim.run_id, index=claim.index, output_key=claim.step["output_key"],
                payload_name=payload["name"], endpoint_name=payload.get("endpoint_name", ""), model=payload["model"],
                messages=result.messages, request_params=payload["params"], output=result.output,
                output_json=result.output_json, finish_reason=result.finish_reason,
                prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                tokens_estimated=result.tokens_estimated, latency_ms=result.latency_ms, ttft_ms=result.ttft_ms,
                attempts=result.attempts, status=result.status, error=result.error, reasoning=result.reasoning,
                reasoning_tokens=result.reasoning_tokens, cached_tokens=result.cached_tokens,
            ))
            if result.learned and claim.endpoint is not None:
                capability_learn(endpoint_id=claim.endpoint.id, model=payload["model"], changes=result.learned[0],
                                 evidence=result.learned[1])
    except IntegrityError:
        return False, None
    return (Finished(claim.run_id, final) if final else True), next_claim


def step_release(*, claim: Claim) -> bool:
    """Give up a claimed step before starting it, so that another task can claim it."""
    return bool(Run.objects.filter(pk=claim.run_id, lease_owner=claim.owner, lease_version=claim.lease_version)
                .update(lease_owner="", lease_expires_at=None))


def release_dead_leases(*, owner_prefix: str) -> int:
    """At start-up of a single embedded server: leases of earlier processes of it are dead."""
    return Run.objects.filter(status__in=ACTIVE_STATUSES, lease_owner__startswith=owner_prefix).update(
        lease_owner="", lease_expires_at=None)
