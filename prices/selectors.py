"""Reading the price book: the entries as listed, which entry a step would pay and why, the book as JSON."""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from prices.book import Rate, book_forget, rate_for
from prices.models import MATCH_EXACT, PRICE_FIELDS, Price

EXPORT_FORMAT = 1
TIER_NAMES = ("this endpoint, exact name", "this endpoint, pattern", "every endpoint, exact name",
              "every endpoint, pattern")


def price_list() -> QuerySet[Price]:
    return Price.objects.select_related("endpoint").order_by("model", "endpoint__name", "-effective_from", "id")


@dataclass(frozen=True)
class Candidate:
    """An entry that matches the model on the endpoint, with the tier it is in and whether it is in effect."""

    price: Price
    tier: str
    in_effect: bool


@dataclass(frozen=True)
class Resolution:
    rate: Rate
    candidates: list[Candidate]


def price_resolve(*, endpoint_id: int | None, model: str, at: datetime.datetime | None = None) -> Resolution:
    """What a step on this endpoint and model would pay at `at` (now by default), as the engine decides
    it (prices.book.rate_for), and every entry that matched, most specific first."""
    book_forget()  # a person asking wants the book as it is now, not as this process last read it
    moment = at or timezone.now()
    rate = rate_for(endpoint_id, model, moment)
    entries = Price.objects.filter(Q(endpoint__isnull=True) | Q(endpoint_id=endpoint_id) if endpoint_id else
                                   Q(endpoint__isnull=True))
    candidates = []
    for price in entries.select_related("endpoint").order_by("-effective_from", "id"):
        if price.matches(model):
            tier = (0 if price.endpoint_id else 2) + (0 if price.match == MATCH_EXACT else 1)
            candidates.append((tier, Candidate(price, TIER_NAMES[tier], price.effective_from <= moment)))
    return Resolution(rate, [candidate for _, candidate in sorted(candidates, key=lambda pair: pair[0])])


def price_export() -> dict[str, Any]:
    """The whole book in the JSON of `manage.py prices export` (endpoints by name, decimals as strings)."""
    entries = []
    for price in Price.objects.select_related("endpoint").order_by("model", "endpoint__name", "effective_from", "id"):
        entry: dict[str, Any] = {"model": price.model, "match": price.match,
                                 "endpoint": price.endpoint.name if price.endpoint else None,
                                 "effective_from": price.effective_from.isoformat()}
        for name in PRICE_FIELDS:
            value = getattr(price, name)
            entry[name] = None if value is None else str(value)
        entries.append({**entry, "currency": price.currency, "note": price.note})
    return {"format": EXPORT_FORMAT, "exported_at": timezone.now().isoformat(), "prices": entries}
