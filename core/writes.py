"""The steps every resource's services share when they write: refuse unknown fields, validate
the whole model before saving, and replace an ordered child list in one go."""
from collections.abc import Iterable, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models


def reject_unknown(names: Iterable[str], allowed: set[str]) -> None:
    unknown = sorted(set(names) - allowed)
    if unknown:
        raise ValidationError({name: "Unknown field." for name in unknown})


def apply_changes(instance: models.Model, data: dict[str, Any], *, allowed: set[str]) -> None:
    """Set the given fields, then full_clean() and save: a bad value changes nothing."""
    reject_unknown(data, allowed)
    for field, value in data.items():
        setattr(instance, field, value)
    instance.full_clean()
    instance.save()


def replace_ordered(existing: models.QuerySet[Any], rows: Sequence[models.Model], *, field: str, label: str) -> None:
    """Replace a child list whole; positions follow the order given. Errors name the item's number."""
    existing.delete()
    for position, row in enumerate(rows):
        row.position = position  # type: ignore[attr-defined]
        try:
            row.full_clean()
        except ValidationError as exc:
            raise ValidationError({field: f"{label} {position + 1}: {'; '.join(exc.messages)}"}) from exc
        row.save()
