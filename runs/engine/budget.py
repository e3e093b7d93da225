"""A run's cost cap: no step starts whose worst case would pass it.

Checked by the ledger where a step is claimed (inside the claim's transaction) and where a commit
hands the next step on, so a run stops with status "budget" instead of calling the LLM. The
worst case of a step is its `max_tokens` at the output price (prices.book.Rate.worst_case_nano);
what was spent is the sum of the run's recorded step costs. A cap that cannot be checked (a step
of unknown price, a cost in another currency) stops the run too, with the reason: a cap is a
promise, and unknown is never $0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from core.money import money_text
from prices.book import COST_UNKNOWN, Rate, StepCost


@dataclass(frozen=True)
class Budget:
    cap_nano: int
    currency: str
    spent_nano: int = 0
    # Why what was spent is not known in the cap's currency (an earlier step's cost), if so.
    problem: str = ""

    @classmethod
    def of_run(cls, cap_nano: int | None, currency: str | None, earlier: list[dict[str, Any]]) -> Budget | None:
        """The budget of a run with a cap, from its earlier steps' recorded costs (None: no cap)."""
        if cap_nano is None:
            return None
        budget = cls(cap_nano, currency or "")
        for step in earlier:
            budget = budget.spend(step["cost_nano"], step["cost_currency"] or "", index=step["index"])
        return budget

    def spend(self, nano: int | None, currency: str, *, index: int) -> Budget:
        if self.problem:
            return self
        if nano is None:
            return Budget(self.cap_nano, self.currency, self.spent_nano, f"step {index + 1}'s cost is unknown")
        if nano and currency != self.currency:
            return Budget(self.cap_nano, self.currency, self.spent_nano,
                          f"step {index + 1} cost {money_text(nano, currency)}, not {self.currency}")
        return Budget(self.cap_nano, self.currency, self.spent_nano + nano)

    def after(self, cost: StepCost, *, index: int) -> Budget:
        return self.spend(cost.nano, cost.currency, index=index)


def worst_tokens(step: dict[str, Any]) -> tuple[int, bool]:
    """The most tokens the step may answer with, and whether the payload said so (else the setting's
    default: also for a value that is not a whole number of at least 1)."""
    params = step["payload"].get("params") or {}
    said = params.get("max_tokens") or params.get("max_completion_tokens")
    if isinstance(said, int) and not isinstance(said, bool) and said >= 1:
        return said, True
    return settings.COST_BUDGET_DEFAULT_MAX_TOKENS, False


def worst_calls(step: dict[str, Any]) -> int:
    """Answers a step may be billed for: each structured-output retry, times `n` choices."""
    payload = step["payload"]
    n = (payload.get("params") or {}).get("n")
    choices = n if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else 1
    retries = payload.get("structured_retries", 0) if payload.get("json_schema") else 0
    return (1 + max(int(retries or 0), 0)) * choices


def budget_stop(budget: Budget | None, rate: Rate, step: dict[str, Any], *, index: int, seconds: float) -> str | None:
    """Why the step at `index` must not start under `budget` (None: it may)."""
    if budget is None:
        return None
    cap = money_text(budget.cap_nano, budget.currency)
    name = f"step {index + 1} ({step['output_key']})"
    if budget.problem:
        return f"Budget reached: the cap of {cap} cannot be checked before {name}: {budget.problem}."
    tokens, said = worst_tokens(step)
    calls = worst_calls(step)
    worst = rate.worst_case_nano(max_tokens=tokens, seconds=seconds, calls=calls)
    if rate.source == COST_UNKNOWN or worst is None:
        return f"Budget reached: the cap of {cap} cannot be checked before {name}: {rate.basis}"
    if worst and rate.currency and rate.currency != budget.currency:
        return (f"Budget reached: the cap of {cap} cannot be checked before {name}: "
                f"its price is in {rate.currency}.")
    if budget.spent_nano + worst > budget.cap_nano:
        limit = f"max_tokens {tokens:,}" if said else f"no max_tokens, so {tokens:,} assumed"
        if calls > 1:
            limit += f", up to {calls} answers"
        return (f"Budget reached: {money_text(budget.spent_nano, budget.currency)} of {cap} spent; {name} could cost "
                f"up to {money_text(worst, budget.currency)} ({limit}).")
    return None
