"""When a failed call is tried again, and after how long."""
from __future__ import annotations

import random

from llm.config import EndpointConfig
from llm.errors import LLMError

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 20.0
RETRY_AFTER_CAP_SECONDS = 60.0


def backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(max(retry_after, 0.0), RETRY_AFTER_CAP_SECONDS)
    # Exponential with full jitter between half and all of the step.
    step = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    return step * (0.5 + random.random() / 2)


# Errors a run waits out (a server restarting, DNS catching up) but a person at a page should see now.
FINAL_WHEN_INTERACTIVE = frozenset({"refused", "dns", "tls", "auth", "model_not_found", "forbidden_address", "redirect"})


def gives_up(error: LLMError, attempt: int, config: EndpointConfig, *, interactive: bool) -> bool:
    if not error.retryable or attempt > config.max_retries:
        return True
    return interactive and error.kind in FINAL_WHEN_INTERACTIVE

