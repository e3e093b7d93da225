"""What `prefetch_related()` stores on an instance, set and read without running it.

Checked against Django 5.2.19: for a reverse relation, prefetch_one_level() stores
`manager.get_queryset()` with `_result_cache = rows` and `_prefetch_done = True` in
`instance._prefetched_objects_cache[name]`, and the related manager's `all()` returns that queryset
(no query). The plain-ORM equivalent of `set_prefetched(run, "responses", rows)` is
`Run.objects.prefetch_related("responses")`; tests/core/internals/test_django_prefetch.py compares them.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Model, QuerySet


def set_prefetched(instance: Model, name: str, rows: Sequence[Model]) -> None:
    """Make `getattr(instance, name).all()` the given rows, with no query, as prefetch_related would."""
    queryset = getattr(instance, name).get_queryset()
    queryset._result_cache = list(rows)
    queryset._prefetch_done = True
    if not hasattr(instance, "_prefetched_objects_cache"):
        instance._prefetched_objects_cache = {}
    instance._prefetched_objects_cache[name] = queryset


def prefetched(instance: Model, name: str) -> QuerySet[Any] | None:
    """The rows prefetched for the relation `name` (a queryset that runs no query), or None."""
    return getattr(instance, "_prefetched_objects_cache", {}).get(name)
