"""The `<id:...>` path converter of every page route that takes an object id: digits within the range
of the database's BigAutoField. A larger number is no match, so a 404 like any unknown id (an
unbounded int reached SQLite as an OverflowError, a 500). Importing this module registers it."""
from __future__ import annotations

from django.urls import register_converter

# BigAutoField's upper bound: 64-bit signed, on SQLite and PostgreSQL alike.
MAX_ID = 2**63 - 1


class IdConverter:
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_ID:
            raise ValueError(f"{value} is larger than any id.")
        return number

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")
