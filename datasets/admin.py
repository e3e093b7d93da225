"""Datasets in the admin: a dataset's name and description are edited here; versions and their rows
are read-only (a new version comes from the pages, the API or `manage.py import_dataset`)."""
from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from datasets import services
from datasets.forms import DatasetForm
from datasets.models import Dataset, DatasetItem, DatasetVersion

ADMIN_ROWS = 100


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DatasetVersionInline(_ReadOnlyInline):
    model = DatasetVersion
    fields = readonly_fields = ["number", "row_count", "content_hash", "message", "created_by", "created_at"]
    ordering = ["-number"]


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    form = DatasetForm
    list_display = ["name", "description", "updated_at"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    inlines = [DatasetVersionInline]

    def save_model(self, request: HttpRequest, obj: Dataset, form: Any, change: bool) -> None:
        if change:
            services.dataset_update(dataset=obj, fields=form.cleaned_data)
        else:
            saved = services.dataset_create(user=request.user, **form.cleaned_data)
            obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: Dataset) -> None:
        services.dataset_delete(dataset=obj)


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "row_count", "message", "created_by", "created_at"]
    list_filter = ["dataset"]
    list_select_related = ["dataset", "created_by"]
    fields = readonly_fields = ["dataset", "number", "content_hash", "row_count", "columns", "message",
                                "created_by", "created_at", "first_rows"]

    @admin.display(description=f"First {ADMIN_ROWS} rows")
    def first_rows(self, version: DatasetVersion) -> str:
        # Not an inline: a version may hold 100,000 rows, and an inline formset renders every one.
        items = DatasetItem.objects.filter(version=version).order_by("position")[:ADMIN_ROWS]
        return format_html("<table><tr><th>#</th><th>row</th><th>inputs</th><th>expected</th><th>metadata</th></tr>{}</table>",
                           format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                                            ((item.position + 1, item.row_id, json.dumps(item.inputs, ensure_ascii=False),
                                              json.dumps(item.expected, ensure_ascii=False),
                                              json.dumps(item.metadata, ensure_ascii=False)) for item in items)))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
