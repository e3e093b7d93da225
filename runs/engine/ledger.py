"""The step ledger: every statement the engine makes on Run and Response.

A step is claimed with a compare-and-set on (next_step, lease) and committed in one short
transaction that checks the lease is still its own; no transaction is ever held across an LLM
call. "Nobody holds this run" is `lease_is_free`, and nowhere else.

How each table is written (one rule):
- The statements of every step (the claim's reads and its compare-and-set, the commit's update
  and its Response insert) go through orchestrator/sql.py: reads are querysets compiled once
  (`CompiledValues`), the fenced updates are `update_rows`, the insert is `insert_instance`.
  The claim's compare-and-set needs an OR and a COALESCE that `update_rows` cannot say: it is
  the one statement written as SQL (`_claim_cas`), its lease condition compiled from
  `lease_is_free`.
- Everything else (heartbeat, release, finish, dead-lease recovery, the sweeps' reads) is the
  plain ORM.
Each fast path names its plain-ORM equivalent; tests/runs/test_ledger.py proves they agree.
"""
from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.sql import CompiledValues, execute, insert_instance, update_rows
from llm.client import EndpointConfig
from llm.models import Endpoint
from llm.selectors import endpoint_config
from llm.services import capability_learn
from prices.book import Rate, StepCost, rate_for, step_cost
from releases.cache import release_cached
from runs.engine import flow
from runs.engine.budget import Budget, budget_stop
from runs.engine.values import step_value
from runs.models import ACTIVE_STATUSES, Response, ResponseStatus, Run, RunStatus, call_was_made
from workflows.graph import is_chain


def lease_is_free(now: datetime.datetime) -> Q:
    """Nobody holds the run: it has no lease owner, or its owner's lease ran out before `now`."""
    return Q(lease_owner="") | Q(lease_expires_at__lt=now)


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
    # What the step pays (resolved once, when its endpoint and model are known), and the run's cap.
    rate: Rate | None = None
    budget: Budget | None = None
    # A map item's number (1..item_count) and value; 0 for a step that is not a map item.
    item: int = 0
    item_value: Any = None
    item_count: int = 0
    # The run's use of the response cache (runs.models.CacheMode, None: as the payload says; runs/engine/cache.py).
    cache_mode: str | None = None

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
    error: str = ""  # why, when the ledger stopped the run itself (a budget)


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
    reported_cost: Decimal | None = None
    # The Response's cache_* fields, when the step used the response cache (runs/engine/cache.py).
    cache: dict[str, Any] = field(default_factory=dict)


# Endpoint settings change rarely; a step reads them at most this stale.
ENDPOINT_CACHE_SECONDS = 5.0
_endpoint_cache: dict[int, tuple[float, EndpointConfig | None]] = {}


def endpoint_config_cached(endpoint_id: int) -> EndpointConfig | None:
    cached = _endpoint_cache.get(endpoint_id)
    now = time.monotonic()
    if cached is not None and now - cached[0] < ENDPOINT_CACHE_SECONDS:
        return cached[1]
    endpoint = Endpoint.objects.filter(pk=endpoint_id, enabled=True).first()
    config = endpoint_config(endpoint) if endpoint is not None else None
    _endpoint_cache[endpoint_id] = (now, config)
    return config


def endpoint_configs_forget() -> None:
    """Forget the endpoints read (tests: an endpoint id of the next test's database is another endpoint)."""
    _endpoint_cache.clear()


def lease_until() -> datetime.datetime:
    return timezone.now() + datetime.timedelta(seconds=settings.RUNS_LEASE_SECONDS)




# --- claim --------------------------------------------------------------------------------------
# Plain-ORM equivalent of each: `list(<compiled>.build(*args))`.
_run_for_claim = CompiledValues(lambda run_id: Run.objects.filter(pk=run_id).values(
    "status", "next_step", "cancel_requested", "release_id", "release__content_hash", "inputs", "started_at",
    "lease_owner", "lease_expires_at", "lease_version", "budget_nano", "budget_currency", "cache_mode")[:1])
_earlier_responses = CompiledValues(lambda run_id, index: Response.objects.filter(run_id=run_id, index__lte=index)
                                    .order_by("index").values("index", "output_key", "output", "output_json", "reasoning",
                                                              "cost_nano", "cost_currency"))


def step_rate(step: dict[str, Any], at: datetime.datetime) -> Rate:
    payload = step["payload"]
    return rate_for(payload.get("endpoint_id"), payload["model"], at)


def call_timeout(endpoint: EndpointConfig | None) -> float:
    return endpoint.timeout if endpoint is not None else 60.0


def step_claim(*, run_id: int, owner: str) -> Claim | Finished | flow.FlowClaim | None:
    """Claim the run's next step for `owner`. None: nothing to do here (finished, or held by another)."""
    with transaction.atomic():
        return step_claim_in_transaction(run_id=run_id, owner=owner)


def step_claim_in_transaction(*, run_id: int, owner: str) -> Claim | Finished | flow.FlowClaim | None:
    """step_claim inside the caller's transaction (run_start_claimed claims as it creates the run)."""
    found = _run_for_claim.rows(run_id)
    run = found[0] if found else None
    if run is None or run["status"] not in ACTIVE_STATUSES:
        return None
    now = timezone.now()
    if run["lease_owner"] and run["lease_expires_at"] and run["lease_expires_at"] >= now:
        return None
    if run["cancel_requested"]:
        return run_finish(run_id, RunStatus.CANCELLED, error="Cancelled by a user.")
    snapshot = release_cached(run["release_id"], run["release__content_hash"]).snapshot
    steps = snapshot["steps"]
    index = run["next_step"]
    chain = is_chain(steps)
    if chain and index >= len(steps):
        return run_finish(run_id, RunStatus.SUCCEEDED)
    # The compare-and-set: the row must still be as read (same version, step, no live lease).
    lease_version = run["lease_version"] + 1
    if _claim_cas(run_id=run_id, index=index, version=run["lease_version"], owner=owner, now=now,
                  running=run["status"] == RunStatus.RUNNING) != 1:
        return None
    if not chain:
        # Steps that may run side by side, be skipped or map over a list: the run is held whole (runs.engine.flow).
        return flow.flow_claim(run, run_id=run_id, lease_version=lease_version, owner=owner, snapshot=snapshot)
    earlier = [] if index == 0 else _earlier_responses.rows(run_id, index)
    if earlier and earlier[-1]["index"] == index:
        # Already committed (a replay copy, or a commit whose dispatch was lost): just advance.
        Run.objects.filter(pk=run_id, lease_version=lease_version).update(
            next_step=index + 1, lease_owner="", lease_expires_at=None)
        return step_claim_in_transaction(run_id=run_id, owner=owner)
    return _chain_claim(run, run_id=run_id, index=index, lease_version=lease_version, owner=owner, steps=steps,
                        earlier=earlier, now=now)


def _chain_claim(run: dict[str, Any], *, run_id: int, index: int, lease_version: int, owner: str,
                 steps: list[dict[str, Any]], earlier: list[dict[str, Any]], now: datetime.datetime) -> Claim | Finished:
    """The claim of a chain's step `index`, once the compare-and-set made it ours, or the run's end
    when its budget forbids the step."""
    endpoint = endpoint_config_cached(steps[index]["payload"]["endpoint_id"])
    rate = step_rate(steps[index], now)
    budget = Budget.of_run(run["budget_nano"], run["budget_currency"], earlier)
    stop = budget_stop(budget, rate, steps[index], index=index, seconds=call_timeout(endpoint))
    if stop:
        # Ours since the compare-and-set: the run ends here, before its LLM call.
        Run.objects.filter(pk=run_id, lease_version=lease_version).update(
            status=RunStatus.BUDGET_REACHED, finished_at=timezone.now(), error=stop, lease_owner="", lease_expires_at=None)
        return Finished(run_id, RunStatus.BUDGET_REACHED, stop)
    variables = dict(run["inputs"])
    for response in earlier:
        variables[response["output_key"]] = step_value(response, steps[response["index"]])
    if earlier:
        variables["previous"] = step_value(earlier[-1], steps[earlier[-1]["index"]])
    return Claim(
        run_id=run_id, index=index, lease_version=lease_version, owner=owner, steps=steps, variables=variables,
        endpoint=endpoint, first=run["started_at"] is None, rate=rate, budget=budget, cache_mode=run["cache_mode"],
    )


def claimed_at_insert(*, owner: str, now: datetime.datetime) -> dict[str, Any]:
    """The fields of a new run that is inserted with its first step already claimed for `owner` (the
    experiment driver starts its cells' runs so): nobody can see the row before it commits, so its
    insert is the compare-and-set. `claim_inserted` makes the matching Claim."""
    return {"status": RunStatus.RUNNING, "started_at": now, "lease_owner": owner, "lease_version": 1,
            "lease_expires_at": lease_until()}


def claim_inserted(*, run_id: int, owner: str, snapshot: dict[str, Any], inputs: dict[str, Any],
                   budget_nano: int | None, budget_currency: str | None,
                   cache_mode: str | None = None) -> Claim | Finished | flow.FlowClaim:
    """The claim of the first step of a run (of the release `snapshot`) inserted with `claimed_at_insert`
    (in the same transaction): what step_claim_in_transaction would have returned for it, without
    reading it back."""
    now = timezone.now()
    steps = snapshot["steps"]
    if not steps:
        return run_finish(run_id, RunStatus.SUCCEEDED) or Finished(run_id, RunStatus.SUCCEEDED)
    if not is_chain(steps):
        run = {"inputs": inputs, "started_at": None, "budget_nano": budget_nano, "budget_currency": budget_currency,
               "cache_mode": cache_mode}
        return flow.flow_claim(run, run_id=run_id, lease_version=1, owner=owner, snapshot=snapshot, fresh=True)
    endpoint = endpoint_config_cached(steps[0]["payload"]["endpoint_id"])
    rate = step_rate(steps[0], now)
    budget = Budget.of_run(budget_nano, budget_currency, [])
    stop = budget_stop(budget, rate, steps[0], index=0, seconds=call_timeout(endpoint))
    if stop:
        Run.objects.filter(pk=run_id, lease_version=1).update(
            status=RunStatus.BUDGET_REACHED, finished_at=timezone.now(), error=stop, lease_owner="", lease_expires_at=None)
        return Finished(run_id, RunStatus.BUDGET_REACHED, stop)
    return Claim(run_id=run_id, index=0, lease_version=1, owner=owner, steps=steps, variables=dict(inputs),
                 endpoint=endpoint, first=True, rate=rate, budget=budget, cache_mode=cache_mode)


# A moment lease_is_free is compiled with; its parameter is swapped for the real `now` per call.
_FREE_AT = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
_claim_cas_by_vendor: dict[tuple[str, bool], tuple[str, list[Any], int]] = {}


def _claim_cas_sql(*, running: bool) -> tuple[str, list[Any], int]:
    """The claim's UPDATE for this connection's vendor: (SQL, lease_is_free's params, where `now` goes in them).

    A run already running keeps its status: the UPDATE does not set it, so none of the indexes
    and triggers on `status` is touched by a step's claim (only the first claim, or a resumed
    one, sets it)."""
    query = Run.objects.filter(lease_is_free(_FREE_AT)).query
    free_sql, free_params = query.get_compiler(connection=connection).compile(query.where)
    at = connection.ops.adapt_datetimefield_value(_FREE_AT)
    if free_params.count(at) != 1:
        raise TypeError("lease_is_free must compare lease_expires_at with `now` exactly once")
    q = connection.ops.quote_name
    starting = "" if running else f", {q('status')} = %s, {q('started_at')} = COALESCE({q('started_at')}, %s)"
    statuses = "= %s" if running else "IN (%s, %s, %s)"
    sql = (f"UPDATE {q(Run._meta.db_table)} SET {q('lease_owner')} = %s, {q('lease_version')} = %s, "
           f"{q('lease_expires_at')} = %s{starting} "
           f"WHERE {q('id')} = %s AND {q('next_step')} = %s AND {q('lease_version')} = %s "
           f"AND {q('cancel_requested')} = %s AND {q('status')} {statuses} AND {free_sql}")
    compiled = _claim_cas_by_vendor[(connection.vendor, running)] = (sql, list(free_params), free_params.index(at))
    return compiled


def _claim_cas(*, run_id: int, index: int, version: int, owner: str, now: datetime.datetime, running: bool) -> int:
    """The claim's compare-and-set UPDATE, built once per vendor (compiling the ORM's costs more than
    running it). `running`: the run was read running, and must still be. Its plain-ORM equivalent is
    `_claim_cas_orm`."""
    sql, free_params, now_at = _claim_cas_by_vendor.get((connection.vendor, running)) or _claim_cas_sql(running=running)
    adapt = connection.ops.adapt_datetimefield_value
    free = list(free_params)
    free[now_at] = adapt(now)
    starting = [] if running else [RunStatus.RUNNING.value, adapt(now)]
    statuses = [RunStatus.RUNNING.value] if running else [status.value for status in ACTIVE_STATUSES]
    params = [owner, version + 1, adapt(lease_until()), *starting, run_id, index, version, False, *statuses, *free]
    return execute(connection, sql, params, lambda cursor: cursor.rowcount)


def _claim_cas_orm(*, run_id: int, index: int, version: int, owner: str, now: datetime.datetime, running: bool) -> int:
    """What `_claim_cas` does, in the ORM (the reference the tests compare it with)."""
    lease = {"lease_owner": owner, "lease_version": version + 1, "lease_expires_at": lease_until()}
    rows = Run.objects.filter(lease_is_free(now), pk=run_id, next_step=index, lease_version=version, cancel_requested=False)
    if running:
        return rows.filter(status=RunStatus.RUNNING).update(**lease)
    return rows.filter(status__in=ACTIVE_STATUSES).update(
        **lease, status=RunStatus.RUNNING, started_at=Coalesce("started_at", now))


# --- while the call runs ------------------------------------------------------------------------
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
            lease_expires_at=lease_until())
        return bool(renewed), bool(cancel)
    return True, bool(cancel)


# --- commit -------------------------------------------------------------------------------------
def _tokens(result: StepResult) -> dict[str, int]:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "latency_ms": result.latency_ms}


def _update_rows_orm(model: type[Run], *, where: dict[str, Any], values: dict[str, Any],
                    increments: dict[str, int] | None = None) -> int:
    """What `update_rows` does, in the ORM (the reference the tests compare the commit's updates with)."""
    added = {name: F(name) + n for name, n in (increments or {}).items()}
    return model.objects.filter(**where).update(**values, **added)


def _release(claim: Claim, result: StepResult, budget_stopped: str | None) -> tuple[str | None, dict[str, Any]]:
    """The run's final status after this step (None: it goes on) and the fields that free the run."""
    released: dict[str, Any] = {"lease_owner": "", "lease_expires_at": None}
    final: str | None = None
    if result.status == ResponseStatus.SUCCEEDED:
        released["next_step"] = claim.index + 1
        if claim.index + 1 >= claim.step_count:
            final = RunStatus.SUCCEEDED
            released.update(output=result.output, output_json=result.output_json)
        elif budget_stopped:
            final = RunStatus.BUDGET_REACHED
            released["error"] = budget_stopped
    elif result.status == ResponseStatus.CANCELLED:
        final = RunStatus.CANCELLED
        released["error"] = f"Cancelled by a user during step {claim.index + 1} ({claim.step['output_key']})."
    else:
        final = RunStatus.FAILED
        released["error"] = f"Step {claim.index + 1} ({claim.step['output_key']}) failed: {result.error}"
    if final:
        released.update(status=final, finished_at=timezone.now())
    return final, released


def step_commit(*, claim: Claim, result: StepResult) -> tuple[Finished | bool, Claim | None]:
    """Record the step and advance the run, only if the lease is still ours.

    Returns (False, None) when another worker took the step over (this copy is dropped),
    (Finished, None) when this step ended the run, and otherwise (True, the claim of the next
    step): the same update that advances the run keeps the lease for the next step, unless a
    cancel was requested, in which case (True, None) leaves the run to the next claim.
    The updates are `update_rows` (ORM: `_update_rows_orm`), the insert `insert_instance`
    (ORM: `Response.objects.bulk_create([response])`).
    """
    ours = {"id": claim.run_id, "lease_owner": claim.owner, "lease_version": claim.lease_version,
            "next_step": claim.index}
    cost = step_cost_of(claim, result)
    next_index = claim.index + 1
    next_endpoint: EndpointConfig | None = None
    next_rate: Rate | None = None
    budget = claim.budget.after(cost, index=claim.index) if claim.budget is not None else None
    stop: str | None = None
    if result.status == ResponseStatus.SUCCEEDED and next_index < claim.step_count:
        next_endpoint = endpoint_config_cached(claim.steps[next_index]["payload"]["endpoint_id"])
        next_rate = step_rate(claim.steps[next_index], timezone.now())
        stop = budget_stop(budget, next_rate, claim.steps[next_index], index=next_index, seconds=call_timeout(next_endpoint))
    final, released = _release(claim, result, stop)
    next_claim: Claim | None = None
    try:
        with transaction.atomic():
            # The response first: the update that makes the run final sees every step (the
            # statistics trigger counts them). A lost lease rolls both back.
            insert_instance(step_response(claim, result, cost))
            advanced = 0
            if final is None:
                # Keep the lease for the next step in the same write, unless a cancel is pending.
                advanced = update_rows(Run, where={**ours, "cancel_requested": False}, increments=_tokens(result),
                                       values={"next_step": claim.index + 1, "lease_version": claim.lease_version + 1,
                                               "lease_expires_at": lease_until()})
                if advanced:
                    output = step_value({"output": result.output, "output_json": result.output_json,
                                     "reasoning": result.reasoning}, claim.step)
                    variables = {**claim.variables, claim.step["output_key"]: output, "previous": output}
                    next_claim = Claim(
                        run_id=claim.run_id, index=next_index, lease_version=claim.lease_version + 1,
                        owner=claim.owner, steps=claim.steps, variables=variables, endpoint=next_endpoint, first=False,
                        rate=next_rate, budget=budget, cache_mode=claim.cache_mode,
                    )
            if not advanced:
                advanced = update_rows(Run, where=ours, values=released, increments=_tokens(result))
            if advanced != 1:
                raise _LeaseLost
            learned_keep(claim, result)
    except (IntegrityError, _LeaseLost):
        return False, None
    return (Finished(claim.run_id, final, stop or "") if final else True), next_claim


class _LeaseLost(Exception):
    """Another worker holds the step now: this commit is rolled back."""


def learned_keep(claim: Claim, result: StepResult) -> None:
    """What the step's call found out about its server, kept with the step's commit (its transaction)."""
    if result.learned and claim.endpoint is not None:
        capability_learn(endpoint_id=claim.endpoint.id, model=claim.step["payload"]["model"],
                         changes=result.learned[0], evidence=result.learned[1])


def step_cost_of(claim: Claim, result: StepResult) -> StepCost:
    """What the step cost, by the price in effect as it commits (the moment reprice prices it at too:
    its response's created_at)."""
    called = call_was_made(status=result.status, attempts=result.attempts, prompt_tokens=result.prompt_tokens,
                           completion_tokens=result.completion_tokens)
    return step_cost(step_rate(claim.step, timezone.now()), prompt_tokens=result.prompt_tokens,
                     completion_tokens=result.completion_tokens, cached_tokens=result.cached_tokens,
                     reasoning_tokens=result.reasoning_tokens, latency_ms=result.latency_ms,
                     reported=result.reported_cost, called=called, cut_off=_cut_off(result))


def _cut_off(result: StepResult) -> bool:
    """A call that ended before its answer did (a cancel, a dropped stream) with part of it received."""
    return result.status != ResponseStatus.SUCCEEDED and bool(result.output)


def step_response(claim: Claim, result: StepResult, cost: StepCost | None = None) -> Response:
    """The Response row of a committed step (not saved)."""
    payload = claim.step["payload"]
    cost = cost or step_cost_of(claim, result)
    return Response(
        run_id=claim.run_id, index=claim.index, output_key=claim.step["output_key"],
        payload_name=payload["name"], endpoint_name=payload.get("endpoint_name", ""), model=payload["model"],
        messages=result.messages, request_params=payload["params"], output=result.output,
        output_json=result.output_json, finish_reason=result.finish_reason,
        prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
        tokens_estimated=result.tokens_estimated, latency_ms=result.latency_ms, ttft_ms=result.ttft_ms,
        attempts=result.attempts, status=result.status, error=result.error, reasoning=result.reasoning,
        reasoning_tokens=result.reasoning_tokens, cached_tokens=result.cached_tokens,
        cost_nano=cost.nano, cost_currency=cost.currency or None, cost_source=cost.source, price_id=cost.price_id,
        price_version=cost.price_version, cost_note=cost.note, item=claim.item, item_value=claim.item_value,
        **result.cache,
    )


# --- release, finish, recovery ------------------------------------------------------------------
def step_release(*, claim: Claim) -> bool:
    """Give up a claimed step before starting it, so that another task can claim it."""
    return bool(Run.objects.filter(pk=claim.run_id, lease_owner=claim.owner, lease_version=claim.lease_version)
                .update(lease_owner="", lease_expires_at=None))


def run_finish(run_id: int, status: str, *, error: str = "") -> Finished | None:
    """Mark a run final (idempotent): only an active run with no live lease changes."""
    now = timezone.now()
    fields: dict[str, Any] = {"status": status, "finished_at": now, "lease_owner": "", "lease_expires_at": None}
    if status == RunStatus.SUCCEEDED:
        last = Response.objects.filter(run_id=run_id, item=0).order_by("-index").values("output", "output_json").first()
        if last is not None:
            fields.update(output=last["output"], output_json=last["output_json"])
    if error:
        fields["error"] = error
    changed = Run.objects.filter(lease_is_free(now), pk=run_id, status__in=ACTIVE_STATUSES).update(**fields)
    return Finished(run_id, status) if changed else None


def leases_release_dead(*, owner_prefix: str) -> int:
    """Free the leases of owners known dead (an earlier process of this server, a stalled job)."""
    return Run.objects.filter(status__in=ACTIVE_STATUSES, lease_owner__startswith=owner_prefix).update(
        lease_owner="", lease_expires_at=None)


def runs_unheld(*, limit: int) -> list[int]:
    """Ids of active runs nobody holds, oldest first: what recovery sweeps pick up."""
    return list(Run.objects.filter(lease_is_free(timezone.now()), status__in=ACTIVE_STATUSES)
                .order_by("created_at").values_list("pk", flat=True)[:limit])
