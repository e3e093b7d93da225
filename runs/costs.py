"""What runs cost, summed from their steps' recorded costs, one currency at a time.

A total never adds two currencies and never counts an unknown cost as zero: it is the amount per
currency plus the number of steps whose cost is unknown ("$4.12 + 37 steps unpriced"). Read
with one grouped query for any number of runs (a list page asks for its page's runs at once);
statistics read the hourly StepRollup instead.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum

from core.money import from_nano, money_text
from core.sql import CompiledValues
from prices.book import COST_COMPUTED, COST_FREE, COST_REPORTED
from runs.models import Response, ResponseStatus


@dataclass
class CostTotal:
    nano: dict[str, int] = field(default_factory=dict)  # currency -> billionths; '' for free steps
    unpriced: int = 0
    estimated: bool = False  # some part was computed from locally counted tokens

    def add(self, *, nano: int | None, currency: str | None, estimated: bool = False, count: int = 1) -> None:
        if nano is None:
            self.unpriced += count
            return
        key = currency or ""
        self.nano[key] = self.nano.get(key, 0) + nano
        self.estimated = self.estimated or estimated

    @property
    def amounts(self) -> dict[str, Decimal]:
        """Currency -> exact amount (free steps add nothing to any currency)."""
        return {currency: from_nano(nano) for currency, nano in sorted(self.nano.items()) if currency}

    @property
    def known(self) -> bool:
        return bool(self.nano)

    @property
    def text(self) -> str:
        """"$4.12", "$4.12 + €1.00", "$4.12 + 37 steps unpriced", "free", "—" (nothing known), "≈$0.01" (estimated)."""
        parts = [money_text(nano, currency) for currency, nano in sorted(self.nano.items()) if currency]
        if not parts and "" in self.nano:  # every known step was free (or made no call)
            parts = ["free"]
        if self.estimated and parts:
            parts[0] = "≈" + parts[0]
        if self.unpriced:
            parts.append(f"{self.unpriced} step{'s' if self.unpriced != 1 else ''} unpriced")
        return " + ".join(parts) if parts else "—"

    def as_json(self) -> dict[str, Any]:
        return {"amounts": {currency: str(amount) for currency, amount in self.amounts.items()},
                "unpriced_steps": self.unpriced, "estimated": self.estimated, "text": self.text}


def cost_of_steps(responses: Iterable[Response]) -> CostTotal:
    """The total of steps already in memory (a run's detail); copied steps cost their run nothing."""
    total = CostTotal()
    for response in responses:
        if response.status != ResponseStatus.COPIED:
            total.add(nano=response.cost_nano, currency=response.cost_currency, estimated=response.cost_estimated)
    return total


def _costs_by_run(ids: list[int]) -> QuerySet[Any]:
    return (Response.objects.filter(run_id__in=ids).exclude(status=ResponseStatus.COPIED)
            .values("run_id", "cost_currency")
            .annotate(nano=Sum("cost_nano"), steps=Count("id"), unknown=Count("id", filter=Q(cost_nano__isnull=True)),
                      estimated=Count("id", filter=Q(tokens_estimated=True, cost_source=COST_COMPUTED)))
            .order_by())


# Compiled once per number of runs: the experiment driver asks after every pass, for the runs it ended
# (compiling the grouped query cost more than running it; tests/runs/test_costs.py compares the two).
_costs_by_run_compiled = CompiledValues(_costs_by_run)


def run_costs(run_ids: Iterable[int]) -> dict[int, CostTotal]:
    """Each run's total, with one grouped query over their steps (by the (run, index) index)."""
    ids = list(dict.fromkeys(run_ids))
    totals: dict[int, CostTotal] = {run_id: CostTotal() for run_id in ids}
    if not ids:
        return totals
    for row in _costs_by_run_compiled.rows(ids):
        total = totals[row["run_id"]]
        if row["unknown"]:
            total.add(nano=None, currency=None, count=row["unknown"])
        if row["steps"] > row["unknown"]:
            total.add(nano=row["nano"] or 0, currency=row["cost_currency"], estimated=bool(row["estimated"]))
    return totals


NOT_PRICED_YET = "Recorded before the price book existed: `manage.py reprice` prices it."


def step_cost_text(response: Response) -> str:
    """A step's cost as shown: "$0.0012", "≈$0.0012" (from locally counted tokens), "free", or "—" (unknown)."""
    if response.cost_nano is None:
        return "—"
    if response.cost_source == COST_FREE:
        return "free"
    text = money_text(response.cost_nano, response.cost_currency or "")
    return "≈" + text if response.cost_estimated else text


def step_cost_note(response: Response) -> str:
    """Where a step's cost came from, or why it is unknown, in words."""
    if response.cost_source is None:
        return NOT_PRICED_YET
    if response.cost_source == COST_REPORTED:
        return "Reported by the server."
    note = response.cost_note or ""
    if response.cost_source == COST_FREE:
        return f"Free. {note}".strip()
    if response.cost_estimated:
        note = f"{note} Estimated: the server sent no usage, the tokens were counted locally.".strip()
    if response.cost_source == COST_COMPUTED and response.price_id and not note:
        note = f"price #{response.price_id} v{response.price_version}"
    return note


def step_cost_basis(response: Response) -> str:
    """The short form of the note, shown beside the amount: "price #3 v2", "reported by the server"; for an
    unknown cost the whole reason (the note is then all there is to say)."""
    if response.cost_nano is None or response.cost_source is None:
        return step_cost_note(response)
    if response.cost_source == COST_REPORTED:
        return "reported by the server"
    if response.cost_source == COST_COMPUTED and response.price_id:
        return f"price #{response.price_id} v{response.price_version}"
    if response.cost_source == COST_COMPUTED:
        return "per second of LLM time"
    return ""


def cost_sum(totals: list[CostTotal]) -> CostTotal:
    """Several totals as one: still per currency, the unknown steps counted."""
    summed = CostTotal()
    for total in totals:
        for currency, nano in total.nano.items():
            summed.add(nano=nano, currency=currency, estimated=total.estimated)
        if total.unpriced:
            summed.add(nano=None, currency=None, count=total.unpriced)
    return summed
