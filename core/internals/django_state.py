"""A model instance marked as loaded from the database, as `Model.from_db()` marks it.

Checked against Django 5.2.19: `instance._state` is a ModelState whose `adding` (False once the row
exists: save() updates, validate_unique() excludes the row itself) and `db` (the alias it was read
from or written to) are what from_db() and save() set.
"""
from __future__ import annotations

from django.db.models import Model


def mark_saved(instance: Model, using: str) -> None:
    """After writing or reading the instance's row without the ORM: it now exists in `using`."""
    instance._state.adding = False
    instance._state.db = using
