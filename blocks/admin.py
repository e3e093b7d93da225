from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from blocks.models import Block
from blocks.selectors import UsedBy, block_used_by
from core.forms import RejectLoneSurrogatesMixin


def variable_chips(names: list[str]) -> str:
    if not names:
        return mark_safe('<span class="ae-muted">none</span>')
    return format_html_join(" ", '<code class="ae-var">{}</code>', ((name,) for name in names))


class BlockForm(RejectLoneSurrogatesMixin, forms.ModelForm):
    class Meta:
        model = Block
        fields = ["name", "description", "content"]
        widgets = {
            # A monospace editor: prompt text is whitespace-sensitive.
            "content": forms.Textarea(attrs={"class": "ae-code", "rows": 16, "spellcheck": "false"}),
            "description": forms.Textarea(attrs={"rows": 2}),
        }
        help_texts = {
            "content": "A Jinja2 template, e.g. <code>Write about {{ topic }}.</code> "
                       "A template that does not parse is refused with the parser's message and line.",
        }


class UsedFilter(admin.SimpleListFilter):
    title = "in use"
    parameter_name = "used"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "used by a payload"), ("no", "unused")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Block]) -> QuerySet[Block]:
        if self.value() == "yes":
            return queryset.filter(payload_blocks__isnull=False).distinct()
        if self.value() == "no":
            return queryset.filter(payload_blocks__isnull=True)
        return queryset


def used_by_links(used_by: UsedBy) -> list[str]:
    """The payloads and workflow steps that use an object, linked to their admin pages."""
    links = [format_html('Payload <a href="{}">{}</a>', reverse("admin:payloads_payload_change", args=[p.pk]), p.name)
             for p in used_by.payloads]
    links += [format_html('Workflow <a href="{}">{}</a>, step “{}” ({})',
                          reverse("admin:workflows_workflow_change", args=[step.workflow.pk]), step.workflow.name,
                          step.output_key, step.payload.name) for step in used_by.steps]
    return links


class UsedByDeleteMixin:
    """The admin's delete page names the payloads and workflow steps that use the object, not the rows linking them."""

    def used_by(self, obj: object) -> UsedBy:
        raise NotImplementedError

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[Any, Any, Any, list[str]]:
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)  # type: ignore[misc]
        if protected:
            protected = [link for obj in objs for link in used_by_links(self.used_by(obj))]
        return deleted, counts, perms_needed, protected


@admin.register(Block)
class BlockAdmin(UsedByDeleteMixin, admin.ModelAdmin):
    form = BlockForm
    list_display = ["name", "description", "variables_used", "used_in", "updated_at"]
    search_fields = ["name", "description", "content"]
    list_filter = [UsedFilter, "updated_at"]
    readonly_fields = ["variables_used", "used_in", "created_at", "updated_at"]
    fields = ["name", "description", "content", "variables_used", "used_in", "created_at", "updated_at"]

    def used_by(self, obj: Block) -> UsedBy:  # type: ignore[override]
        return block_used_by(obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Block]:
        return super().get_queryset(request).prefetch_related("payload_blocks__payload")

    @admin.display(description="variables")
    def variables_used(self, block: Block) -> str:
        return variable_chips(block.variables)

    @admin.display(description="used in payloads")
    def used_in(self, block: Block) -> str:
        payloads = sorted({pb.payload for pb in block.payload_blocks.all()}, key=lambda p: p.name)
        if not payloads:
            return mark_safe('<span class="ae-muted">not used</span>')
        return format_html_join(", ", '<a href="{}">{}</a>', (
            (reverse("admin:payloads_payload_change", args=[p.pk]), p.name) for p in payloads))
