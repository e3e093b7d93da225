"""Deleting the rows a queryset selects with one DELETE, without loading them.

`QuerySet.delete()` collects the rows (and, for a foreign key with SET_NULL pointing at them, loads
each one) before deleting; for batches of old runs that is most of the time spent. `_raw_delete`
is the DELETE the collector itself ends with. The caller must have dealt with every relation
first (the retention service nulls the pointers into the batch, then deletes responses, then runs).

Checked against Django 5.2.19: `QuerySet._raw_delete(using)` returns the number of rows deleted.
tests/core/internals/test_django_raw_delete.py fails if it changes shape.
"""
from typing import Any

from django.db.models import QuerySet


def raw_delete(queryset: QuerySet[Any]) -> int:
    """DELETE the selected rows in one statement; no signals, no cascades. Returns the count."""
    return queryset._raw_delete(queryset.db)
