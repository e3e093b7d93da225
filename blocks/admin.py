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
from blocks.services import block_create, block_update
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


@admin.display(description="versions")
def version_history(obj: Any) -> str:
    """The object's versions, newest first, as a small read-only table."""
    if obj is None or obj.pk is None:
        return "-"
    versions = obj.versions.select_related("created_by").order_by("-number")
    rows = format_html_join("", "<tr><td>v{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
        (v.number, v.message or "-", v.created_by.get_username() if v.created_by else "-",
         v.created_at.strftime("%Y-%m-%d %H:%M:%S")) for v in versions))
    if not rows:
        return mark_safe('<span class="ae-muted">no versions yet</span>')
    return format_html('<table class="ae-history"><thead><tr><th>version</th><th>message</th><th>author</th>'
                       "<th>time</th></tr></thead><tbody>{}</tbody></table>", rows)


def adopt(obj: Any, saved: Any) -> None:
    """Give the admin's unsaved instance the state of the one a create service saved (pk and all)."""
    obj.__dict__.update(saved.__dict__)


def inline_rows(formsets: list[Any], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """An inline's kept rows in the order the sortable inline gave them, as the service's list entries."""
    rows = []
    for formset in formsets:
        for index, form in enumerate(formset.forms):
            data = getattr(form, "cleaned_data", None) or {}
            if data.get("DELETE") or data.get(fields[0]) is None:
                continue
            rows.append((data.get("position") or 0, index, {name: data[name] for name in fields}))
    return [row for *_, row in sorted(rows, key=lambda item: (item[0], item[1]))]


class ServiceSaveMixin:
    """The admin saves through the app's services, so each save makes its version like every other way.

    The inlines' rows are handed to the service too (save_related), and the change message then
    describes the main form only: the formsets are never saved by the admin itself.
    """

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Deferred to save_related, which has the inlines' rows as well."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        fields = dict(form.cleaned_data)
        saved = self.service_save(request, form.instance if change else None, fields, formsets)
        adopt(form.instance, saved)

    def service_save(self, request: HttpRequest, obj: Any, fields: dict[str, Any], formsets: Any) -> Any:
        raise NotImplementedError

    def construct_change_message(self, request: HttpRequest, form: Any, formsets: Any, add: bool = False) -> Any:
        return super().construct_change_message(request, form, [], add)  # type: ignore[misc]


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
class BlockAdmin(ServiceSaveMixin, UsedByDeleteMixin, admin.ModelAdmin):
    form = BlockForm
    list_display = ["name", "description", "variables_used", "used_in", "updated_at"]
    search_fields = ["name", "description", "content"]
    list_filter = [UsedFilter, "updated_at"]
    readonly_fields = ["variables_used", "used_in", "created_at", "updated_at", "history"]
    fields = ["name", "description", "content", "variables_used", "used_in", "created_at", "updated_at", "history"]

    history = staticmethod(version_history)

    def service_save(self, request: HttpRequest, obj: Block | None, fields: dict[str, Any], formsets: Any) -> Block:
        if obj is None:
            return block_create(user=request.user, **fields)
        return block_update(block=obj, data=fields, user=request.user)

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
