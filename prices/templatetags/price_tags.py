"""How prices are shown on the pages: exact, without the six stored places' trailing zeros."""
from __future__ import annotations

from decimal import Decimal

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.filter
def price_amount(value: Decimal | None) -> str:
    """2.500000 → "2.50", 0.075000 → "0.075", None → "—" (at least two places, never rounded)."""
    if value is None:
        return "—"
    text = f"{Decimal(value).normalize():f}"
    whole, _, places = text.partition(".")
    return f"{whole}.{places.ljust(2, '0')}"


@register.filter
def ticks(text: str) -> SafeString:
    """prices.book's reasons name models and endpoints in `backticks`: shown as code."""
    parts = escape(text).split("`")
    return mark_safe("".join(f"<code>{part}</code>" if index % 2 else part  # escaped above
                             for index, part in enumerate(parts)))
