"""Executing a flow (runs.engine.flow): the steps of a run whose graph is not a chain.

One task holds the run. It starts every step whose needs have ended, up to the workflow's
`max_parallel` at a time (a map step takes one of those places; its items have their own limit),
evaluates `when` before a step's call, expands `for_each` into items, and commits each unit as it
ends (flow_ledger.unit_commit). A failed step (or an item under on_error "fail") stops the run: the units
still in flight are cancelled and recorded so. A cancel stops every unit in flight; a lost lease
drops this holder's work uncommitted, for the new holder to redo.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from blocks import render_workers, templating
from runs.engine import dbthread, events, flow_ledger
from runs.engine.flow import FlowClaim
from runs.engine.ledger import Claim, StepResult
from runs.engine.step import CancelSignal, LeaseLost, run_step
from runs.models import ResponseStatus, RunStatus
from workflows import graph

logger = logging.getLogger(__name__)


@dataclass
class _Map:
    """A map step in progress: its items, which have ended, how many are in flight."""

    index: int
    items: list[Any]
    limit: int
    outputs: dict[int, Any] = field(default_factory=dict)  # item number -> output (ended items)
    failed: list[int] = field(default_factory=list)
    next: int = 1  # the next item number to consider starting
    active: int = 0
    claim: Claim | None = None  # the step's own claim, which its items' are made from

    @property
    def ended(self) -> bool:
        return len(self.outputs) + len(self.failed) >= len(self.items)


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


class _Flow:
    def __init__(self, fc: FlowClaim, cancel: CancelSignal) -> None:
        self.fc = fc
        self.cancel = cancel
        self.running: dict[asyncio.Task[StepResult], tuple[Claim, CancelSignal]] = {}
        self.maps: dict[int, _Map] = {}
        self.started: set[int] = set()
        # Once set, the run ends with this (status, error) as soon as the units in flight have ended.
        self.stop: tuple[str, str] | None = None
        self.lost = False

    # --- what may start ---------------------------------------------------------------------
    def _ready(self) -> list[int]:
        fc = self.fc
        return [index for index, step in enumerate(fc.steps)
                if index not in self.started and not fc.step_done(index)
                and all(fc.step_done(need) for need in step.get("needs", [index - 1] if index else []))]

    def _places_taken(self) -> int:
        steps = {claim.index for claim, _ in self.running.values() if claim.item == 0}
        return len(steps) + sum(1 for m in self.maps.values() if not m.ended)

    async def _launch(self) -> None:
        """Start what may start, until nothing more can (a skipped step may free the next)."""
        progressed = True
        while progressed and self.stop is None and not self.cancel.requested and not self.lost:
            progressed = False
            for index in self._ready():
                if self._places_taken() >= self.fc.max_parallel or self.stop is not None or self.lost:
                    break
                self.started.add(index)
                progressed = await self._begin(index) or progressed
            for m in list(self.maps.values()):
                progressed = await self._fill(m) or progressed

    async def _begin(self, index: int) -> bool:
        """Start step `index`; True if it ended at once (skipped, failed before a call, an empty map)."""
        fc = self.fc
        step = fc.steps[index]
        variables = fc.variables(index)
        if step.get("when"):
            try:
                [text] = await render_workers.arender_blocks([graph.when_source(step["when"])], variables)
            except templating.TemplateProblem as exc:
                return await self._fail_before_call(index, variables, f"its when could not be evaluated: {exc}")
            if not graph.when_holds(text):
                claim, _ = await dbthread.call(flow_ledger.unit_claim, fc=fc, index=index, variables=variables)
                result = flow_ledger.skipped_result(step)
                if not await dbthread.call(flow_ledger.unit_commit, fc=fc, claim=claim, result=result):
                    self.lost = True
                    return False
                await events.astep_skipped(claim, result)
                return True
        if step.get("for_each"):
            return await self._map_begin(index, variables)
        claim, stop = await dbthread.call(flow_ledger.unit_claim, fc=fc, index=index, variables=variables)
        if stop:
            self.stop = (RunStatus.BUDGET_REACHED, stop)
            return False
        self._spawn(claim)
        return False

    async def _map_begin(self, index: int, variables: dict[str, Any]) -> bool:
        step = self.fc.steps[index]
        try:
            items = graph.for_each_items(step["for_each"], variables)
        except graph.NotAList as exc:
            return await self._fail_before_call(index, variables, str(exc))
        if len(items) > settings.RUNS_MAP_MAX_ITEMS:
            return await self._fail_before_call(
                index, variables, f"for_each '{step['for_each']}' has {len(items):,} items, more than the "
                f"{settings.RUNS_MAP_MAX_ITEMS:,} allowed (RUNS_MAP_MAX_ITEMS)")
        m = _Map(index, items, limit=int(step.get("max_parallel") or self.fc.max_parallel))
        for number in range(1, len(items) + 1):  # items committed before a restart are not run again
            row = self.fc.rows.get((index, number))
            if row is not None:
                self._item_ended(m, number, row)
        self.maps[index] = m
        if m.ended:
            return await self._map_end(m)
        return False

    async def _fill(self, m: _Map) -> bool:
        """Start items of a map up to its limit; True if the map ended here."""
        if m.ended and m.index in self.maps:
            return await self._map_end(m)
        while m.active < m.limit and m.next <= len(m.items) and self.stop is None and not self.cancel.requested:
            number = m.next
            m.next += 1
            if (m.index, number) in self.fc.rows:
                continue
            if m.claim is None:
                m.claim, _ = await dbthread.call(flow_ledger.unit_claim, fc=self.fc, index=m.index,
                                                 variables=self.fc.variables(m.index), item_count=len(m.items))
            claim, stop = flow_ledger.item_claim(self.fc, m.claim, number, m.items[number - 1], len(m.items))
            if stop:
                self.stop = (RunStatus.BUDGET_REACHED, stop)
                return False
            m.active += 1
            self._spawn(claim)
        return False

    def _spawn(self, claim: Claim) -> None:
        signal = self.cancel.child()
        task = asyncio.ensure_future(self._unit(claim, signal))
        self.running[task] = (claim, signal)

    async def _unit(self, claim: Claim, signal: CancelSignal) -> StepResult:
        await events.astep_started(claim)
        return await run_step(claim, signal)

    # --- what ended ---------------------------------------------------------------------------
    async def _ended(self, task: asyncio.Task[StepResult]) -> None:
        claim, signal = self.running.pop(task)
        self.cancel.children.discard(signal)
        try:
            result = task.result()
        except LeaseLost:
            self.lost = True
            return
        if result.status == ResponseStatus.CANCELLED and self.stop is not None and not self.cancel.requested:
            result.error = f"Stopped: {self.stop[1]}"
        if not await dbthread.call(flow_ledger.unit_commit, fc=self.fc, claim=claim, result=result):
            self.lost = True
            return
        await events.astep_finished(claim, result)
        if claim.item:
            await self._item_done(claim, result)
        elif result.status == ResponseStatus.CANCELLED:
            self._stop(RunStatus.CANCELLED, f"Cancelled by a user during {_name(claim)}.")
        elif result.status == ResponseStatus.FAILED:
            self._stop(RunStatus.FAILED, f"{_name(claim).capitalize()} failed: {result.error}")

    async def _item_done(self, claim: Claim, result: StepResult) -> None:
        m = self.maps[claim.index]
        m.active -= 1
        self._item_ended(m, claim.item, self.fc.rows[(claim.index, claim.item)])
        policy = claim.step.get("on_error", "fail")
        if result.status == ResponseStatus.CANCELLED and self.cancel.requested:
            self._stop(RunStatus.CANCELLED, f"Cancelled by a user during {_name(claim)}.")
        elif result.status != ResponseStatus.SUCCEEDED and policy == "fail":
            self._stop(RunStatus.FAILED, f"{_name(claim).capitalize()} failed: {result.error}")
        if m.ended or (m.active == 0 and policy == "fail" and self._failed_items(m)):
            await self._map_end(m)

    def _failed_items(self, m: _Map) -> list[int]:
        """The items whose call failed (not those cancelled because another did, or by a user)."""
        return [n for n in m.failed if self.fc.rows[(m.index, n)]["status"] == ResponseStatus.FAILED]

    def _item_ended(self, m: _Map, number: int, row: dict[str, Any]) -> None:
        if row["status"] in (ResponseStatus.SUCCEEDED, ResponseStatus.COPIED):
            m.outputs[number] = row["output_json"] if row["output_json"] is not None else row["output"]
        else:
            m.failed.append(number)

    async def _map_end(self, m: _Map) -> bool:
        """Commit the map step's own row: its items' outputs in order (by its on_error policy)."""
        self.maps.pop(m.index, None)
        step = self.fc.steps[m.index]
        policy = step.get("on_error", "fail")
        claim = m.claim or (await dbthread.call(flow_ledger.unit_claim, fc=self.fc, index=m.index,
                                                 variables=self.fc.variables(m.index), item_count=len(m.items)))[0]
        status, error = ResponseStatus.SUCCEEDED, ""
        if m.failed and policy == "fail":
            first = min(self._failed_items(m) or m.failed)
            row = self.fc.rows[(m.index, first)]
            status = ResponseStatus.FAILED
            error = f"item {first} ({_short(m.items[first - 1])}) failed: {row['error']}"
            self._stop(RunStatus.FAILED, f"Step {m.index + 1} ({step['output_key']}) {error}")
        if policy == "null":
            outputs = [m.outputs.get(number) for number in range(1, len(m.items) + 1)]
        else:
            outputs = [m.outputs[number] for number in sorted(m.outputs)]
        result = await dbthread.call(flow_ledger.aggregate_commit, fc=self.fc, claim=claim, outputs=outputs,
                                     status=status, error=error)
        if result is None:
            self.lost = True
            return False
        await events.astep_finished(claim, result)
        return True

    async def _fail_before_call(self, index: int, variables: dict[str, Any], error: str) -> bool:
        claim, _ = await dbthread.call(flow_ledger.unit_claim, fc=self.fc, index=index, variables=variables)
        result = StepResult(status=ResponseStatus.FAILED, error=error)
        if not await dbthread.call(flow_ledger.unit_commit, fc=self.fc, claim=claim, result=result):
            self.lost = True
            return False
        await events.astep_finished(claim, result)
        self._stop(RunStatus.FAILED, f"Step {index + 1} ({claim.step['output_key']}) failed: {error}")
        return True

    def _stop(self, status: str, error: str) -> None:
        """The run ends with `status` once the units in flight have ended: they are cancelled now."""
        if self.stop is None:
            self.stop = (status, error)
        for _, signal in self.running.values():
            signal.set()

    # --- the loop -----------------------------------------------------------------------------
    async def run(self) -> str | None:
        fc = self.fc
        if fc.first:
            await events.arun_started(fc.run_id)
        self._stop_if_ended_before()
        try:
            while True:
                await self._launch()
                if self.lost or not self.running:
                    break
                done, _ = await asyncio.wait(self.running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    await self._ended(task)
                    if self.lost:
                        break
                if self.lost:
                    break
        finally:
            if self.running:  # a lost lease, or this task cancelled (shutdown): drop what is in flight
                for task in self.running:
                    task.cancel()
                await asyncio.gather(*self.running, return_exceptions=True)
        if self.lost:
            logger.warning("run %s: lease lost, dropping this holder's work", fc.run_id)
            return None
        return await self._finish()

    def _stop_if_ended_before(self) -> None:
        """A run resumed after its holder died between a failing commit and the run's end."""
        for (index, item), row in self.fc.rows.items():
            if item == 0 and row["status"] in (ResponseStatus.FAILED, ResponseStatus.CANCELLED):
                step = self.fc.steps[index]
                status = RunStatus.CANCELLED if row["status"] == ResponseStatus.CANCELLED else RunStatus.FAILED
                self._stop(status, f"Step {index + 1} ({step['output_key']}) failed: {row['error']}")
                return

    async def _finish(self) -> str | None:
        fc = self.fc
        if self.stop is not None:
            status, error = self.stop
        elif self.cancel.requested:
            status, error = RunStatus.CANCELLED, "Cancelled by a user."
        elif all(fc.step_done(index) for index in range(fc.step_count)):
            status, error = RunStatus.SUCCEEDED, ""
        else:
            waiting = [fc.steps[i]["output_key"] for i in range(fc.step_count) if not fc.step_done(i)]
            status, error = RunStatus.FAILED, f"Steps could not start: {', '.join(waiting)}."
        if not await dbthread.call(flow_ledger.flow_finish, fc=fc, status=status, error=error):
            return None
        await events.arun_finished(fc.run_id, status, error)
        return status


def _name(claim: Claim) -> str:
    name = f"step {claim.index + 1} ({claim.step['output_key']})"
    if claim.item:
        name += f" item {claim.item} ({_short(claim.item_value)})"
    return name


async def execute_flow(fc: FlowClaim, cancel: CancelSignal) -> str | None:
    """Run a held flow to its end. Returns its final status, or None if this holder lost it."""
    return await _Flow(fc, cancel).run()
