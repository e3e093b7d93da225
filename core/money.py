"""Money: Decimal in Python, whole billionths ("nano") of the currency in the database.

A step's cost is stored as an integer count of 1e-9 of its currency, so a sum over a million
steps in SQL is an exact integer (SQLite has no exact decimal type; its SUM of a DECIMAL column
is a float). Prices are Decimal with six places per million tokens; one token at such a price is
at most 1e-12, so a step's cost is rounded once, half to even, to the nano.
"""
from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from django.core.validators import RegexValidator

NANO = Decimal("0.000000001")
PER_UNIT = 10**9
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}

validate_currency = RegexValidator(r"^[A-Z]{3}\Z", "A currency is a three-letter ISO 4217 code in capitals, e.g. USD or EUR.")


def to_nano(amount: Decimal) -> int:
    """An amount of money as whole billionths, rounded half to even."""
    return int((amount * PER_UNIT).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def from_nano(nano: int) -> Decimal:
    """Billionths back to an exact Decimal with nine places."""
    return (Decimal(nano) / PER_UNIT).quantize(NANO)


def money_text(nano: int | None, currency: str, *, places: int | None = None) -> str:
    """How an amount is shown: "$0.0123", "€4.12", "12.50 CHF", "$0". Small amounts keep their significant digits."""
    if nano is None:
        return "—"
    amount = from_nano(nano)
    if places is None and not amount:
        places = 0
    if places is None:
        places = 2 if abs(amount) >= 1 else 4 if abs(amount) >= Decimal("0.01") or amount == 0 else 6
    shown = f"{amount:,.{places}f}"
    if amount and Decimal(shown.replace(",", "")) == 0:
        shown = f"{amount.normalize():f}"
    symbol = SYMBOLS.get(currency)
    if symbol:
        return f"-{symbol}{shown[1:]}" if shown.startswith("-") else f"{symbol}{shown}"
    return f"{shown} {currency}".strip()
