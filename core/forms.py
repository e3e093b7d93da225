"""Form bases of every app.

RejectLoneSurrogatesMixin is the base of every form that takes text (pages and admin): a lone surrogate
in any field, or inside a JSON field's value, is an error on that field, before the view or a service
writes anything. ServiceErrorsMixin shows a service's ValidationError next to the field it names."""
from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from core.surrogates import MESSAGE, escape_lone_surrogates, surrogate_path


class _EscapingEncoder(json.JSONEncoder):
    # The refused value is shown again in its field: escaped, or the page itself could not be encoded.
    def encode(self, o: Any) -> str:
        return escape_lone_surrogates(super().encode(o))


class RejectLoneSurrogatesMixin:
    """Put it first among the bases; a subclass's clean() must call super().clean()."""

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}  # type: ignore[misc]
        for name, value in list(cleaned.items()):
            where = surrogate_path(value, name)
            if where:
                field = self.fields[name]  # type: ignore[attr-defined]
                if isinstance(field, forms.JSONField):
                    field.encoder = type("Escaping", (_EscapingEncoder, field.encoder or json.JSONEncoder), {})
                self.add_error(name, f"{where}: {MESSAGE}")  # type: ignore[attr-defined]
        return cleaned


class ServiceErrorsMixin:
    """Show a service's ValidationError next to the field it names (or above the form)."""

    def add_service_errors(self, error: ValidationError) -> None:
        problems = error.message_dict if hasattr(error, "error_dict") else {None: error.messages}
        for field, messages in problems.items():
            for message in messages:
                self.add_error(field if field in self.fields else None, message)  # type: ignore[attr-defined]
