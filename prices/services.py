"""Writing the price book: every change is checked for the ties prices.book refuses to pick between."""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from llm.models import Capability, Endpoint
from payloads.models import Payload
from prices.book import book_forget
from prices.models import MATCH_EXACT, MATCH_REGEX, PRICE_FIELDS, Price


def known_models() -> set[str]:
    """The model names this installation calls: what a regular expression's tie is checked against."""
    names = set(Payload.objects.exclude(model="").values_list("model", flat=True))
    names |= set(Endpoint.objects.values_list("default_model", flat=True))
    names |= set(Capability.objects.values_list("model", flat=True))
    names |= set(Price.objects.filter(match=MATCH_EXACT).values_list("model", flat=True))
    return names


def price_tie(price: Price) -> str | None:
    """Why `price` would tie with an entry already in the book (same endpoint scope, same kind of
    match, same `effective_from`, a model both match), or None."""
    rivals = Price.objects.filter(endpoint_id=price.endpoint_id, match=price.match, effective_from=price.effective_from)
    if price.pk:
        rivals = rivals.exclude(pk=price.pk)
    scope = "on this endpoint" if price.endpoint_id else "on every endpoint"
    names = known_models() if price.match == MATCH_REGEX else set()
    for rival in rivals:
        if rival.model == price.model:
            return (f"Price #{rival.pk} already prices `{rival.model}` {scope} from the same moment: "
                    "edit it, or give this one another date.")
        if price.match == MATCH_REGEX:
            both = sorted(name for name in names if price.matches(name) and rival.matches(name))
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
        price.full_clean()
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


# --- the book as JSON (manage.py prices import) -----------------------------------------------
IMPORT_FORMAT = 1
IMPORT_KEYS = {"model", "match", "endpoint", "effective_from", *PRICE_FIELDS, "currency", "note"}


@dataclass(frozen=True)
class ImportReport:
    created: int
    updated: int
    unchanged: int
    dry_run: bool


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValidationError("Must be a number or a string holding one.")
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise ValidationError(f"{value!r} is not a number.") from exc


def _moment(value: Any) -> datetime.datetime:
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None and isinstance(value, str) and parse_date(value) is not None:
        parsed = datetime.datetime.combine(parse_date(value), datetime.time(), tzinfo=datetime.UTC)  # type: ignore[arg-type]
    if parsed is None:
        raise ValidationError(f"{value!r} is not an ISO 8601 date or date and time.")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, datetime.UTC)


def _entry_fields(entry: Any) -> dict[str, Any]:
    """One entry of the file as Price fields; ValidationError by field name."""
    if not isinstance(entry, dict):
        raise ValidationError({"entry": "Each price is a JSON object."})
    errors: dict[str, list[str]] = {name: ["Unknown field."] for name in sorted(set(entry) - IMPORT_KEYS)}
    errors |= {name: ["This field is required."] for name in ("model", "effective_from", "input_per_million",
                                                               "output_per_million") if entry.get(name) in (None, "")}
    fields: dict[str, Any] = {name: entry[name] for name in ("model", "match", "currency", "note") if name in entry}
    parsers = {name: _decimal for name in PRICE_FIELDS} | {"effective_from": _moment, "endpoint": _endpoint}
    for name, parse in parsers.items():
        if name in entry and name not in errors:
            try:
                fields[name] = parse(entry[name])
            except ValidationError as exc:
                errors[name] = exc.messages
    if errors:
        raise ValidationError(errors)
    return fields


def _endpoint(name: Any) -> Endpoint | None:
    if name is None:
        return None
    endpoint = Endpoint.objects.filter(name=name).first() if isinstance(name, str) else None
    if endpoint is None:
        raise ValidationError(f"No endpoint is named {name!r}.")
    return endpoint


def _import_entry(fields: dict[str, Any]) -> str:
    """Save one entry: an equal entry (same endpoint, model, match and moment) is updated, not tied with."""
    same = Price.objects.filter(endpoint=fields.get("endpoint"), model=fields["model"],
                                match=fields.get("match", MATCH_EXACT), effective_from=fields["effective_from"]).first()
    if same is None:
        price_save(Price(), fields=fields)
        return "created"
    if all(getattr(same, name) == value for name, value in fields.items()):
        return "unchanged"
    price_save(same, fields=fields)
    return "updated"


def price_import(*, data: Any, dry_run: bool = False) -> ImportReport:
    """Import a book written by `manage.py prices export` (or by hand): all entries or none.

    Raises ValidationError whose keys name the entry and field, e.g. "prices[3].input_per_million".
    """
    if not isinstance(data, dict) or data.get("format") != IMPORT_FORMAT or not isinstance(data.get("prices"), list):
        raise ValidationError({"format": f'Expected a JSON object with "format": {IMPORT_FORMAT} and a "prices" list.'})
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    errors: dict[str, list[str]] = {}
    try:
        with transaction.atomic():
            for index, entry in enumerate(data["prices"]):
                try:
                    counts[_import_entry(_entry_fields(entry))] += 1
                except ValidationError as exc:
                    errors |= {f"prices[{index}].{name}": messages for name, messages in exc.message_dict.items()}
            if errors:
                raise ValidationError(errors)
            if dry_run:
                transaction.set_rollback(True)
    finally:
        book_forget()
    return ImportReport(**counts, dry_run=dry_run)
