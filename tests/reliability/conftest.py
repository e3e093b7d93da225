"""Fixtures for the reliability tests. SOAK=1 (make soak) runs the long forms."""
import os
from collections.abc import Iterator

import pytest
from django.core.cache import cache

SOAK = os.environ.get("SOAK") == "1"


def soak_or(long: int, short: int) -> int:
    """The soak's size of a fault or load test, or the shortened size that `make test` runs."""
    return long if SOAK else short


@pytest.fixture(autouse=True)
def _fresh_throttles() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()
