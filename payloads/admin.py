from typing import Any

from adminsortable2.admin import SortableAdminBase, SortableTabularInline
from django import forms
from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from blocks.admin import ServiceSaveMixin, UsedByDeleteMixin, inline_rows, variable_chips, version_history
from blocks.selectors import UsedBy
from core.forms import RejectLoneSurrogatesMixin
from payloads.forms import OPTIONAL_JSON_FIELDS
from payloads.models import Payload, PayloadBlock
from payloads.selectors import payload_used_by
from payloads.services import (
    RenderProblem,
    payload_create,
    payload_preview,
    payload_update,
    payload_variables,
    sample_variables,
)

# Sample values are read from GET parameters named with this prefix, e.g. ?preview=1&var-topic=tides.
PREVIEW_PREFIX = "var-"


class PayloadBlockInline(SortableTabularInline):
    model = PayloadBlock
    fields = ["block", "role", "block_variables"]
    readonly_fields = ["block_variables"]
    extra = 0

    @admin.display(description="variables")
    def block_variables(self, payload_block: PayloadBlock) -> str:
        if payload_block.block_id is None:
            return "-"
        return variable_chips(payload_block.block.variables)


class PayloadForm(RejectLoneSurrogatesMixin, forms.ModelForm):
    class Meta:
        model = Payload
        fields = ["name", "description", "endpoint", "model", "stream", "temperature", "top_p", "max_tokens", "stop",
                  "seed", "presence_penalty", "frequency_penalty", "json_schema", "structured_retries", "pass_reasoning",
                  "extra_params", "cache_ttl_seconds"]
        field_classes = OPTIONAL_JSON_FIELDS
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "stop": forms.Textarea(attrs={"rows": 2, "class": "ae-code"}),
            "json_schema": forms.Textarea(attrs={"rows": 6, "class": "ae-code"}),
            "extra_params": forms.Textarea(attrs={"rows": 3, "class": "ae-code"}),
        }


def preview_context(request: HttpRequest, payload: Payload) -> dict[str, Any]:
    """The preview section: one field per variable; rendered messages once the form was sent."""
    names = payload_variables(payload)
    submitted = "preview" in request.GET
    # An empty field counts as not given, so the preview names it as missing.
    values = {name: request.GET.get(PREVIEW_PREFIX + name, "") for name in names}
    preview: dict[str, Any] = {
        "fields": [{"name": name, "param": PREVIEW_PREFIX + name, "value": values[name]} for name in names],
        "submitted": submitted, "messages": None, "error": "", "missing": [],
    }
    if submitted:
        try:
            preview["messages"] = payload_preview(payload=payload, variables=sample_variables(values))
        except RenderProblem as exc:
            preview["error"] = str(exc)
            preview["missing"] = exc.missing
    return preview


@admin.register(Payload)
class PayloadAdmin(ServiceSaveMixin, UsedByDeleteMixin, SortableAdminBase, admin.ModelAdmin):
    form = PayloadForm
    inlines = [PayloadBlockInline]
    list_display = ["name", "endpoint", "model_used", "stream", "block_count", "variables_used", "used_in", "updated_at"]
    list_filter = ["endpoint", "stream"]
    search_fields = ["name", "description", "model"]
    list_select_related = ["endpoint"]
    readonly_fields = ["variables_used", "used_in", "created_at", "updated_at", "history"]
    fieldsets = [
        (None, {"fields": ["name", "description", "endpoint", "model", "stream", "variables_used", "used_in"]}),
        ("Sampling", {"fields": ["temperature", "top_p", "max_tokens", "stop", "seed",
                                 "presence_penalty", "frequency_penalty"]}),
        ("Structured output and extra parameters", {
            "classes": ["collapse"], "fields": ["json_schema", "structured_retries", "pass_reasoning", "extra_params"]}),
        ("Response cache", {"classes": ["collapse"], "fields": ["cache_ttl_seconds"]}),
        ("History", {"fields": ["created_at", "updated_at", "history"]}),
    ]

    history = staticmethod(version_history)

    def service_save(self, request: HttpRequest, obj: Payload | None, fields: dict[str, Any], formsets: Any) -> Payload:
        blocks: Any = inline_rows(formsets, ("block", "role"))
        if obj is None:
            return payload_create(blocks=blocks, user=request.user, **fields)
        return payload_update(payload=obj, data=fields, blocks=blocks, user=request.user)

    def used_by(self, obj: Payload) -> UsedBy:  # type: ignore[override]
        return payload_used_by(obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Payload]:
        return (super().get_queryset(request).annotate(block_total=Count("payload_blocks", distinct=True))
                .prefetch_related("payload_blocks__block", "steps__workflow"))

    @admin.display(description="model")
    def model_used(self, payload: Payload) -> str:
        return payload.model or format_html('{} <span class="ae-muted">(default)</span>', payload.endpoint.default_model)

    @admin.display(description="blocks", ordering="block_total")
    def block_count(self, payload: Payload) -> int:
        return payload.block_total  # type: ignore[attr-defined]

    @admin.display(description="variables")
    def variables_used(self, payload: Payload) -> str:
        if payload.pk is None:
            return "-"
        names: set[str] = set()
        for payload_block in payload.payload_blocks.all():
            names |= set(payload_block.block.variables)
        return variable_chips(sorted(names))

    @admin.display(description="used in workflows")
    def used_in(self, payload: Payload) -> str:
        if payload.pk is None:
            return "-"
        workflows = sorted({step.workflow for step in payload.steps.all()}, key=lambda w: w.name)
        if not workflows:
            return mark_safe('<span class="ae-muted">not used</span>')
        return format_html_join(", ", '<a href="{}">{}</a>', (
            (reverse("admin:workflows_workflow_change", args=[w.pk]), w.name) for w in workflows))

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        payload = self.get_object(request, object_id)
        if payload is not None and request.method == "GET":
            extra_context = {**(extra_context or {}), "preview": preview_context(request, payload)}
        return super().change_view(request, object_id, form_url, extra_context)
