"""A paginator that never counts more than it shows: for lists of a million rows (the runs admin)."""
from functools import cached_property
from typing import Any

from django.core.paginator import Paginator

COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP rows (a COUNT over a LIMIT subquery), so a page of the newest costs the
    same at any size; past the cap the list says "10000" and pages on from there are still reachable."""

    @cached_property
    def count(self) -> int:
        query: Any = self.object_list
        return query.order_by()[:COUNT_CAP].count() if hasattr(query, "order_by") else len(query)

    @property
    def capped(self) -> bool:
        """The count stopped at the cap: there are at least that many."""
        return self.count >= COUNT_CAP
