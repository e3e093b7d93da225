"""Which price a step pays, and what the step costs.

`rate_for(endpoint_id, model, at)` is the rule, in this order:
1. the endpoint is free (self-hosted, $0 on purpose): free; priced per second: that price;
2. otherwise the price book: among the entries that match the model (exactly, or a regular
   expression over the whole name) on this endpoint or on every endpoint, the most specific
   tier wins: endpoint-limited exact, endpoint-limited regex, global exact, global regex; in it,
   the entry with the newest `effective_from` not after the step. Two entries of one tier with
   that same moment are a tie: the step is unknown with the reason, never a silent pick.
3. nothing matches: unknown, with the reason ("no price for model `x` on endpoint `y`").

The book is read once per process and kept BOOK_CACHE_SECONDS (as the engine keeps endpoint
settings); a step resolves its rate once, when its endpoint and model are known. `book_forget`
drops it at once in this process (prices.services calls it after every change).
"""
from __future__ import annotations

import datetime
import re
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings

from core.money import money_text, to_nano
from llm.models import Endpoint
from prices.models import MATCH_EXACT, Price

COST_REPORTED, COST_COMPUTED, COST_FREE, COST_UNKNOWN = "reported", "computed", "free", "unknown"
COST_SOURCES = [(COST_REPORTED, "Reported by the server"), (COST_COMPUTED, "Computed from a price"),
                (COST_FREE, "Free"), (COST_UNKNOWN, "Unknown")]
MILLION = Decimal(1_000_000)

BOOK_CACHE_SECONDS = 5.0
# A step whose call was cut off mid-answer without usage: unknown for good (reprice leaves it).
CUT_OFF_NOTE = "The call was cut off mid-answer and the server sent no usage: what it cost is unknown."


@dataclass(frozen=True)
class Rate:
    """What a step on one endpoint and model pays at one moment, and why."""

    source: str
    currency: str = ""
    price_id: int | None = None
    price_version: int | None = None
    input: Decimal | None = None
    output: Decimal | None = None
    cached: Decimal | None = None
    reasoning: Decimal | None = None
    per_second: Decimal | None = None
    # Computed: which entry or endpoint setting it came from. Unknown: why there is none.
    basis: str = ""

    def worst_case_nano(self, *, max_tokens: int, seconds: float, calls: int = 1) -> int | None:
        """The most a step can cost before it is made: `calls` answers (its structured-output retries,
        `n`) of `max_tokens` at the output (or reasoning) price, or of `seconds` (the endpoint's
        timeout) per second. Its prompt is not counted: it is not rendered yet. None: it cannot be
        known (unknown price)."""
        if self.source == COST_FREE:
            return 0
        if self.per_second is not None:
            return to_nano(self.per_second * Decimal(str(seconds)) * calls)
        if self.output is None:
            return None
        dearest = max(self.output, self.reasoning or self.output)
        return to_nano(dearest * max_tokens * calls / MILLION)


@dataclass(frozen=True)
class StepCost:
    """A step's cost as stored with its response: `nano` is None when unknown."""

    nano: int | None
    currency: str
    source: str
    price_id: int | None = None
    price_version: int | None = None
    note: str = ""

    @property
    def text(self) -> str:
        return money_text(self.nano, self.currency)


def step_cost(rate: Rate, *, prompt_tokens: int, completion_tokens: int, cached_tokens: int | None = None,
              reasoning_tokens: int | None = None, latency_ms: int = 0, reported: Decimal | None = None,
              called: bool = True, cut_off: bool = False) -> StepCost:
    """The cost of one step. A step that made no call (its prompt failed to render, its endpoint is
    gone) cost nothing; a call cut off mid-answer (cancelled, a dropped stream) sent no usage, so
    what it cost is unknown, not 0; a cost the server reported wins, unless the endpoint is free on purpose."""
    if not called:
        return StepCost(0, "", COST_COMPUTED, note="No call was made.")
    if rate.source == COST_FREE:
        return StepCost(0, "", COST_FREE, note=rate.basis)
    if cut_off and reported is None:
        return StepCost(None, "", COST_UNKNOWN, note=CUT_OFF_NOTE)
    if reported is not None:
        return StepCost(to_nano(reported), settings.COST_REPORTED_CURRENCY, COST_REPORTED,
                        note="The server reported this cost in its usage.")
    if rate.source == COST_UNKNOWN:
        return StepCost(None, "", COST_UNKNOWN, note=rate.basis)
    if rate.per_second is not None:
        nano = to_nano(rate.per_second * Decimal(latency_ms) / 1000)
    else:
        assert rate.input is not None and rate.output is not None
        cached = min(max(cached_tokens or 0, 0), prompt_tokens)
        reasoning = min(max(reasoning_tokens or 0, 0), completion_tokens) if rate.reasoning is not None else 0
        amount = ((prompt_tokens - cached) * rate.input
                  + cached * (rate.cached if rate.cached is not None else rate.input)
                  + (completion_tokens - reasoning) * rate.output
                  + reasoning * (rate.reasoning or 0))
        nano = to_nano(amount / MILLION)
    return StepCost(nano, rate.currency, COST_COMPUTED, rate.price_id, rate.price_version, rate.basis)


# --- the book, read once per process ------------------------------------------------------------
@dataclass(frozen=True)
class _Entry:
    id: int
    version: int
    model: str
    exact: bool
    pattern: re.Pattern[str] | None
    endpoint_id: int | None
    effective_from: datetime.datetime
    input: Decimal
    output: Decimal
    cached: Decimal | None
    reasoning: Decimal | None
    currency: str

    def matches(self, model: str) -> bool:
        return self.model == model if self.exact else bool(self.pattern and self.pattern.fullmatch(model))

    @property
    def tier(self) -> int:
        """0 is the most specific: endpoint-limited exact, endpoint-limited regex, global exact, global regex."""
        return (0 if self.endpoint_id is not None else 2) + (0 if self.exact else 1)


def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


class _Book:
    def __init__(self) -> None:
        self.loaded_at = time.monotonic()
        self.endpoints: dict[int, dict[str, Any]] = {
            row["id"]: row for row in Endpoint.objects.values("id", "name", "pricing", "price_per_second",
                                                              "price_currency", "timeout_seconds")}
        self.entries = [
            _Entry(id=p.id, version=p.version, model=p.model, exact=p.match == MATCH_EXACT,
                   pattern=None if p.match == MATCH_EXACT else _compile(p.model), endpoint_id=p.endpoint_id,
                   effective_from=p.effective_from, input=p.input_per_million, output=p.output_per_million,
                   cached=p.cached_input_per_million, reasoning=p.reasoning_per_million, currency=p.currency)
            for p in Price.objects.order_by("-effective_from", "id")]
        self.tiers: dict[tuple[int | None, str], list[list[_Entry]]] = {}
        # (endpoint, model) -> (from, until, rate): the rate stays the same while no price of its tiers
        # takes effect, so a step's lookup is a dict read and two comparisons, not a walk of the tiers.
        self.rates: dict[tuple[int | None, str], tuple[datetime.datetime | None, datetime.datetime | None, Rate]] = {}

    def tiers_for(self, endpoint_id: int | None, model: str) -> list[list[_Entry]]:
        key = (endpoint_id, model)
        tiers = self.tiers.get(key)
        if tiers is None:
            tiers = [[], [], [], []]
            for entry in self.entries:  # newest first, so each tier is too
                if entry.endpoint_id in (None, endpoint_id) and entry.matches(model):
                    tiers[entry.tier].append(entry)
            self.tiers[key] = tiers
        return tiers


_book: _Book | None = None


def book() -> _Book:
    global _book
    if _book is None or time.monotonic() - _book.loaded_at >= BOOK_CACHE_SECONDS:
        _book = _Book()
    return _book


def book_forget() -> None:
    """Read the book again at the next step (after a change in this process)."""
    global _book
    _book = None


def _basis(entry: _Entry) -> str:
    scope = "this endpoint" if entry.endpoint_id is not None else "every endpoint"
    how = f"`{entry.model}`" if entry.exact else f"/{entry.model}/"
    return f"price #{entry.id} v{entry.version}: {how} on {scope}, from {entry.effective_from:%Y-%m-%d %H:%M}"


def rate_for(endpoint_id: int | None, model: str, at: datetime.datetime) -> Rate:
    """The rate a step on this endpoint and model pays at `at` (see the module's rule)."""
    current = book()
    key = (endpoint_id, model)
    known = current.rates.get(key)
    if known is not None and (known[0] is None or known[0] <= at) and (known[1] is None or at < known[1]):
        return known[2]
    rate = _rate_looked_up(current, endpoint_id, model, at)
    dates = [entry.effective_from for tier in current.tiers_for(endpoint_id, model) for entry in tier]
    current.rates[key] = (max((d for d in dates if d <= at), default=None), min((d for d in dates if d > at), default=None),
                          rate)
    return rate


def _rate_looked_up(current: _Book, endpoint_id: int | None, model: str, at: datetime.datetime) -> Rate:
    endpoint = current.endpoints.get(endpoint_id) if endpoint_id is not None else None
    where = f" on endpoint `{endpoint['name']}`" if endpoint else ""
    if endpoint and endpoint["pricing"] == Endpoint.PRICING_FREE:
        return Rate(COST_FREE, basis=f"Endpoint `{endpoint['name']}` is marked free.")
    if endpoint and endpoint["pricing"] == Endpoint.PRICING_PER_SECOND and endpoint["price_per_second"] is not None:
        per_second = endpoint["price_per_second"]
        return Rate(COST_COMPUTED, endpoint["price_currency"], per_second=per_second,
                    basis=f"Endpoint `{endpoint['name']}` at {money_text(to_nano(per_second), endpoint['price_currency'])} "
                          "per second of LLM time.")
    for tier in current.tiers_for(endpoint_id, model):
        in_effect = [entry for entry in tier if entry.effective_from <= at]
        if not in_effect:
            continue
        newest = [entry for entry in in_effect if entry.effective_from == in_effect[0].effective_from]
        if len(newest) > 1:
            ids = " and ".join(f"#{entry.id}" for entry in newest)
            return Rate(COST_UNKNOWN, basis=f"Prices {ids} tie for model `{model}`{where}: "
                                            "make one more specific or give them different dates.")
        entry = newest[0]
        return Rate(COST_COMPUTED, entry.currency, entry.id, entry.version, entry.input, entry.output, entry.cached,
                    entry.reasoning, basis=_basis(entry))
    return Rate(COST_UNKNOWN, basis=f"No price for model `{model}`{where}.")

