"""The commits of a held flow (runs.engine.flow): each unit in its own short transaction, fenced by
the run's lease; the run's end; a map step's own row.
"""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.sql import insert_instance, update_rows
from prices.book import COST_COMPUTED, StepCost
from runs.engine import ledger
from runs.engine.budget import budget_stop
from runs.engine.flow import FlowClaim
from runs.engine.ledger import Claim, StepResult
from runs.models import ResponseStatus, Run, RunStatus

# A map step's own row made no call: its items' rows carry what they cost.
_AGGREGATE_COST = StepCost(0, "", COST_COMPUTED, note="No call of its own: each item's row has its cost.")

def unit_claim(*, fc: FlowClaim, index: int, variables: dict[str, Any], item_count: int = 0) -> tuple[Claim, str | None]:
    """The claim of step `index` of a held flow (a map's items' claims are made from it: item_claim),
    and why the run's budget forbids starting it (None: it may start). Reads the endpoint (cached)."""
    step = fc.steps[index]
    endpoint = ledger.endpoint_config_cached(step["payload"]["endpoint_id"])
    rate = ledger.step_rate(step, timezone.now())
    claim = ledger.Claim(run_id=fc.run_id, index=index, lease_version=fc.lease_version, owner=fc.owner,
                         steps=fc.steps, variables=variables, endpoint=endpoint, first=False, rate=rate,
                         budget=fc.budget, item_count=item_count, cache_mode=fc.cache_mode)
    return claim, budget_stop(fc.budget, rate, step, index=index, seconds=ledger.call_timeout(endpoint))


def item_claim(fc: FlowClaim, step_claim: Claim, number: int, value: Any, count: int) -> tuple[Claim, str | None]:
    """unit_claim of a map's item from its step's claim (its endpoint and price read once per map):
    no database read."""
    step = step_claim.step
    variables = {**step_claim.variables, step.get("item_as", "item"): value}
    claim = replace(step_claim, variables=variables, budget=fc.budget, item=number, item_value=value, item_count=count)
    assert claim.rate is not None
    return claim, budget_stop(fc.budget, claim.rate, step, index=claim.index,
                              seconds=ledger.call_timeout(claim.endpoint))


def unit_commit(*, fc: FlowClaim, claim: Claim, result: StepResult, cost: StepCost | None = None) -> bool:
    """Record one unit, only if the lease is still ours: its Response row and the run's totals (a
    step's own row also counts the step as ended). False: another holder has the run now."""
    cost = cost or ledger.step_cost_of(claim, result)
    ours = {"id": fc.run_id, "lease_owner": fc.owner, "lease_version": fc.lease_version}
    increments = {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                  "latency_ms": result.latency_ms}
    if claim.item == 0:
        increments["next_step"] = 1
    response = ledger.step_response(claim, result, cost)
    try:
        with transaction.atomic():
            insert_instance(response)
            if update_rows(Run, where=ours, values={"lease_expires_at": ledger.lease_until()}, increments=increments) != 1:
                raise _LeaseLost
            ledger.learned_keep(claim, result)
    except (IntegrityError, _LeaseLost):
        return False
    fc.rows[(claim.index, claim.item)] = {
        "index": claim.index, "item": claim.item, "status": result.status, "output": result.output,
        "output_json": result.output_json, "reasoning": result.reasoning, "error": result.error,
        "cost_nano": cost.nano, "cost_currency": cost.currency or None}
    if fc.budget is not None:
        fc.budget = fc.budget.after(cost, index=claim.index)
    return True


def aggregate_commit(*, fc: FlowClaim, claim: Claim, outputs: list[Any], status: str,
                     error: str = "") -> StepResult | None:
    """A map step's own row: the list of its items' outputs (its items' rows are committed already).
    Returns the step's result, or None when another holder has the run now."""
    result = ledger.StepResult(status=status, output=json.dumps(outputs, ensure_ascii=False), output_json=outputs,
                               error=error)
    return result if unit_commit(fc=fc, claim=claim, result=result, cost=_AGGREGATE_COST) else None


def flow_finish(*, fc: FlowClaim, status: str, error: str = "") -> bool:
    """End the run, only if the lease is still ours. A run that succeeded answers with its last step."""
    values: dict[str, Any] = {"status": status, "finished_at": timezone.now(), "lease_owner": "",
                              "lease_expires_at": None}
    if error:
        values["error"] = error
    last = fc.rows.get((fc.step_count - 1, 0))
    if status == RunStatus.SUCCEEDED and last is not None:
        values.update(output=last["output"], output_json=last["output_json"])
    return bool(Run.objects.filter(pk=fc.run_id, lease_owner=fc.owner, lease_version=fc.lease_version).update(**values))


def skipped_result(step: dict[str, Any]) -> StepResult:
    return ledger.StepResult(status=ResponseStatus.SKIPPED, output=step.get("default", ""))


class _LeaseLost(Exception):
    """Another holder has the run: the unit's commit is rolled back."""
