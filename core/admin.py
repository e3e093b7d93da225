"""Admin pieces every app's admin may use."""
from typing import Any

from django.http import HttpRequest


class ReadOnlyMixin:
    """A ModelAdmin or inline that shows records and changes none (runs, releases, label moves)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
