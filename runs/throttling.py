"""One per-user limit on starting runs (RUNS_THROTTLE_RATE, DRF scope "runs"), whatever starts them:
the API's create and re-run, the run form, the pages' re-run and replay, the admin's "Re-run" action.
Runs spend money at the LLM provider, so no way in may skip it."""
from __future__ import annotations

import math
from typing import Any

from rest_framework.throttling import UserRateThrottle

from core.client_address import ClientAddressMixin


class RunStartThrottle(ClientAddressMixin, UserRateThrottle):
    # The same cache key as ScopedRateThrottle's "runs" scope: one history per user for every route.
    scope = "runs"


def run_start_wait(request: Any) -> int | None:
    """Seconds the user must wait before starting another run, or None (and the start is counted)."""
    throttle = RunStartThrottle()
    if throttle.allow_request(request, None):
        return None
    return max(1, math.ceil(throttle.wait() or 1))


def too_many_runs(wait: int) -> str:
    return f"Too many runs started; try again in {wait} s."
