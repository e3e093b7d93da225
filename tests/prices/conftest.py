"""The price book is read once per process (prices.book): each test starts from an empty cache."""
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from prices.book import book_forget
from prices.models import Price
from prices.services import price_save


@pytest.fixture(autouse=True)
def _fresh_book() -> Iterator[None]:
    book_forget()
    yield
    book_forget()


def make_price(model: str, **fields: Any) -> Price:
    """An entry saved through prices.services (so ties are refused as in the product)."""
    values: dict[str, Any] = {"model": model, "effective_from": "2026-01-01T00:00:00Z",
                              "input_per_million": Decimal("1"), "output_per_million": Decimal("2"), **fields}
    return price_save(Price(), fields=values)
