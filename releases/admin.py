"""Releases and label moves are records: read-only here. Labels change only through
releases.services (label_set, label_delete), so every create, move and delete in the admin is logged too."""
from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from blocks.admin import ServiceSaveMixin
from core.admin import ReadOnlyMixin
from core.forms import RejectLoneSurrogatesMixin
from releases.forms import REASON_MAX
from releases.models import Label, LabelMove, Release
from releases.services import label_delete, label_set


@admin.register(Release)
class ReleaseAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["workflow_name", "number", "hash_short", "message", "cut_by_hand", "created_at"]
    list_filter = ["workflow", "cut_by_hand"]
    search_fields = ["workflow_name", "message", "content_hash"]
    fields = ["workflow", "workflow_name", "number", "content_hash", "message", "cut_by_hand", "created_by",
              "created_at", "workflow_version", "steps_display", "snapshot_display"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Release]:
        return super().get_queryset(request).select_related("workflow", "created_by", "workflow_version")

    @admin.display(description="hash", ordering="content_hash")
    def hash_short(self, release: Release) -> str:
        return release.content_hash[:12]

    @admin.display(description="versions used per step")
    def steps_display(self, release: Release) -> str:
        return format_html('<pre class="ae-pre">{}</pre>', json.dumps(release.steps, indent=2, ensure_ascii=False))

    @admin.display(description="snapshot")
    def snapshot_display(self, release: Release) -> str:
        return format_html('<pre class="ae-pre">{}</pre>', json.dumps(release.snapshot, indent=2, ensure_ascii=False))


class LabelForm(RejectLoneSurrogatesMixin, forms.ModelForm):
    reason = forms.CharField(required=False, max_length=REASON_MAX, help_text="Why: kept in the label's history.")

    class Meta:
        model = Label
        fields = ["workflow", "name", "release"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        workflow = data.get("workflow") or (self.instance.workflow if self.instance.pk else None)
        release = data.get("release")
        if workflow is not None and release is not None and release.workflow_id != workflow.pk:
            self.add_error("release", f"{release} belongs to another workflow, not to “{workflow}”.")
        return data


@admin.register(Label)
class LabelAdmin(ServiceSaveMixin, admin.ModelAdmin):
    form = LabelForm
    list_display = ["name", "workflow", "release", "updated_by", "updated_at"]
    list_filter = ["workflow"]
    search_fields = ["name"]
    fields = ["workflow", "name", "release", "reason", "updated_by", "updated_at"]
    readonly_fields = ["updated_by", "updated_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Label | None = None) -> list[str]:
        # A label is moved, never renamed or given to another workflow: its history is by name.
        return [*self.readonly_fields, *(["workflow", "name"] if obj is not None else [])]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Label]:
        return super().get_queryset(request).select_related("workflow", "release", "updated_by")

    def service_save(self, request: HttpRequest, obj: Label | None, fields: dict[str, Any], formsets: Any) -> Label:
        workflow = obj.workflow if obj is not None else fields["workflow"]
        name = obj.name if obj is not None else fields["name"]
        label, _ = label_set(workflow=workflow, name=name, release=fields["release"], user=request.user,
                             reason=fields.get("reason", ""))
        return label

    def delete_model(self, request: HttpRequest, obj: Label) -> None:
        label_delete(label=obj, user=request.user, reason="deleted in the admin")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Label]) -> None:
        for label in queryset.select_related("workflow"):
            label_delete(label=label, user=request.user, reason="deleted in the admin")


@admin.register(LabelMove)
class LabelMoveAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["moved_at", "workflow_name", "label", "action", "from_release", "to_release", "moved_by", "reason"]
    list_filter = ["workflow", "label"]
    search_fields = ["label", "reason", "workflow_name"]
    fields = ["workflow", "workflow_name", "label", "from_release", "to_release", "reason", "moved_by", "moved_at"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[LabelMove]:
        return super().get_queryset(request).select_related("workflow", "from_release", "to_release", "moved_by")
