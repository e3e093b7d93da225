"""Writing the price book: every change is checked for the ties prices.book refuses to pick between."""
from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F

from llm.models import Capability, Endpoint
from payloads.models import Payload
from prices.book import book_forget
from prices.models import MATCH_EXACT, MATCH_REGEX, Price


def known_models() -> set[str]:
    """The model names this installation calls: what a regular expression's tie is checked against."""
    names = set(Payload.objects.exclude(model="").values_list("model", flat=True))
    names |= set(Endpoint.objects.values_list("default_model", flat=True))
    names |= set(Capability.objects.values_list("model", flat=True))
    names |= set(Price.objects.filter(match=MATCH_EXACT).values_list("model", flat=True))
    return names


def _matches(price: Price, model: str) -> bool:
    if price.match == MATCH_EXACT:
        return price.model == model
    try:
        return re.fullmatch(price.model, model) is not None
    except re.error:
        return False


def price_tie(price: Price) -> str | None:
    """Why `price` would tie with an entry already in the book (same endpoint scope, same kind of
    match, same `effective_from`, a model both match), or None."""
    rivals = Price.objects.filter(endpoint_id=price.endpoint_id, match=price.match, effective_from=price.effective_from)
    if price.pk:
        rivals = rivals.exclude(pk=price.pk)
    scope = "on this endpoint" if price.endpoint_id else "on every endpoint"
    for rival in rivals:
        if rival.model == price.model:
            return (f"Price #{rival.pk} already prices `{rival.model}` {scope} from the same moment: "
                    "edit it, or give this one another date.")
        if price.match == MATCH_REGEX:
            both = sorted(name for name in known_models() if _matches(price, name) and _matches(rival, name))
            if both:
                return (f"This pattern and price #{rival.pk} (/{rival.model}/) both match `{both[0]}` {scope} "
                        "from the same moment, so neither would win: make one narrower or give them different dates.")
    return None


def price_save(price: Price, *, fields: dict[str, Any] | None = None) -> Price:
    """Create or change an entry. Raises ValidationError (by field) for bad values and ties."""
    for name, value in (fields or {}).items():
        setattr(price, name, value)
    errors: dict[str, list[str]] = {}
    try:
        # The constraints are the tie rule's exact half (price_tie says it by field) and the field
        # validators' non-negative prices: checked here, they would come back as a nameless "__all__".
        price.full_clean(validate_constraints=False)
    except ValidationError as exc:
        errors = exc.update_error_dict(errors)
    tie = price_tie(price) if price.model and price.effective_from else None
    if tie:
        errors.setdefault("model", []).append(tie)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        if price.pk:
            price.version = F("version") + 1
        price.save()
    price.refresh_from_db(fields=["version"])
    book_forget()
    return price


def price_delete(price: Price) -> None:
    price.delete()
    book_forget()
