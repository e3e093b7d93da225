"""The ledger's statements for runs whose steps make a graph rather than a chain (issue 22).

A run whose steps all read the one above, with no `when` and no `for_each`, is a chain: the
ledger's step-by-step claim (ledger.step_claim) runs it. Any other run is a *flow*: its claim
takes the run's lease once, with the same compare-and-set, and hands its holder everything
committed so far (a FlowClaim). The holder then runs several units at a time (a step, or one item
of a step that maps over a list) and commits each on its own, in one short transaction that
inserts its Response and checks the lease is still its own (`unit_commit`); a unit is unique by
(run, index, item), so no unit is ever recorded twice. After a crash the next claim reads what
was committed and runs only what is missing.

`Run.next_step` counts a flow's steps that have ended (its progress), not the next one to run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.sql import CompiledValues
from runs.engine.budget import Budget
from runs.engine.values import step_value
from runs.models import Response
from workflows.models import DEFAULT_MAX_PARALLEL

_committed = CompiledValues(lambda run_id: Response.objects.filter(run_id=run_id).values(
    "index", "item", "status", "output", "output_json", "reasoning", "error", "cost_nano", "cost_currency"))


@dataclass
class FlowClaim:
    """A flow run held by `owner` (lease_version fences every commit), with what is committed."""

    run_id: int
    lease_version: int
    owner: str
    steps: list[dict[str, Any]]
    inputs: dict[str, Any]
    first: bool
    max_parallel: int
    budget: Budget | None
    cache_mode: str | None = None  # the run's use of the response cache (runs/engine/cache.py)
    # Committed rows by (index, item): item 0 is a step's own row (its output), n >= 1 a map item.
    rows: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)

    @property
    def step_count(self) -> int:
        return len(self.steps)

    def step_done(self, index: int) -> bool:
        return (index, 0) in self.rows

    def variables(self, index: int) -> dict[str, Any]:
        """What step `index` may read: the inputs and the outputs of the steps that have ended."""
        variables = dict(self.inputs)
        for position, step in enumerate(self.steps[:index]):
            row = self.rows.get((position, 0))
            if row is not None:
                variables[step["output_key"]] = step_value(row, step)
        if index and self.step_done(index - 1):
            variables["previous"] = variables[self.steps[index - 1]["output_key"]]
        return variables


def flow_claim(run: dict[str, Any], *, run_id: int, lease_version: int, owner: str, snapshot: dict[str, Any],
               fresh: bool = False) -> FlowClaim:
    """The claim of a flow run whose lease `owner` has just taken (inside the claim's transaction).
    `fresh`: the run was inserted claimed, so nothing is committed yet."""
    rows = {} if fresh else {(row["index"], row["item"]): row for row in _committed.rows(run_id)}
    budget = Budget.of_run(run["budget_nano"], run["budget_currency"], list(rows.values()))
    return FlowClaim(run_id=run_id, lease_version=lease_version, owner=owner, steps=snapshot["steps"],
                     inputs=dict(run["inputs"]), first=fresh or run["started_at"] is None,
                     max_parallel=int(snapshot.get("max_parallel") or DEFAULT_MAX_PARALLEL), budget=budget, rows=rows,
                     cache_mode=run.get("cache_mode"))
