from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from core.forms import RejectLoneSurrogatesMixin
from llm import capabilities, diagnostics, selectors, services
from llm.cache import cache_prune, cache_purge
from llm.forms import EndpointForm
from llm.models import CachedResponse, Capability, Endpoint


class EndpointPermissionsMixin:
    """Capabilities follow their endpoint's permissions: view_endpoint to look, change_endpoint to set or forget."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("llm.view_endpoint") or self.has_change_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("llm.change_endpoint")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("llm.change_endpoint")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("llm.change_endpoint")


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ["name", "base_url", "default_model", "api_key_status", "enabled", "is_mock",
                    "max_concurrency", "timeout_seconds", "max_retries", "updated_at"]
    list_filter = ["enabled", "is_mock"]
    search_fields = ["name", "base_url", "default_model"]
    readonly_fields = ["api_key_status", "capability_summary", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "base_url", "default_model", "enabled", "is_mock"]}),
        ("API key", {"fields": ["api_key_status", "api_key", "clear_api_key"]}),
        ("Limits and headers", {"fields": ["timeout_seconds", "max_retries", "max_concurrency",
                                                "requests_per_minute", "tokens_per_minute", "headers"]}),
        ("Pricing", {"fields": ["pricing", "price_per_second", "price_currency"],
                     "description": "By tokens: the price book's entries for each model (Prices page). Free: "
                                    "$0 on purpose, e.g. self-hosted. Per second: of LLM time."}),
        ("What the server accepts", {"fields": ["capability_summary"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]
    actions = ["run_connectivity_test", "relearn_capabilities"]

    @admin.display(description="API key")
    def api_key_status(self, endpoint: Endpoint) -> str:
        return "set" if endpoint.has_api_key else "not set"

    @admin.display(description="Per model")
    def capability_summary(self, endpoint: Endpoint) -> str:
        """Read-only here (no formset to send back): each row links to its capability admin page."""
        if endpoint.pk is None:
            return "—"
        rows = [(reverse("admin:llm_capability_change", args=[entry["row"].pk]), entry["row"].model,
                 format_html_join("; ", "{}: {} ({})", [(field["name"], field["shown"], field["source"])
                                                        for field in entry["fields"]]))
                for entry in selectors.capability_table(endpoint)]
        if not rows:
            return "Nothing learned or set yet: every model gets the standard request."
        return format_html("<ul>{}</ul>", format_html_join("", '<li><a href="{}">{}</a>: {}</li>', rows))

    def save_model(self, request: HttpRequest, obj: Endpoint, form: forms.Form, change: bool) -> None:
        assert isinstance(form, EndpointForm)
        fields = form.endpoint_fields()
        if change:
            services.endpoint_update(endpoint=obj, api_key=form.api_key_change(), **fields)
            return
        created = services.endpoint_create(api_key=form.api_key_change() or "", **fields)
        # The admin goes on with `obj` (log entry, redirect): make it the saved row.
        obj.pk = created.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Endpoint) -> None:
        services.endpoint_delete(endpoint=obj)

    @admin.action(description="Test connectivity of the selected endpoints")
    def run_connectivity_test(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        for endpoint in queryset:
            report = diagnostics.connectivity_test_sync(endpoint)
            summary = "passed" if report.ok else f"failed ({report.error_kind}): {report.error}"
            self.message_user(request, f"{endpoint.name} ({report.model}): connectivity test {summary}",
                              messages.SUCCESS if report.ok else messages.ERROR)
            for check in report.checks:
                level = {True: messages.SUCCESS, False: messages.WARNING, None: messages.INFO}[check.ok]
                verdict = {True: "ok", False: "failed", None: "not run"}[check.ok]
                latency = f" [{check.latency_ms} ms]" if check.latency_ms is not None else ""
                self.message_user(request, f"{endpoint.name} · {check.name}: {verdict}: {check.detail}{latency}", level)

    @admin.action(description="Reset and re-learn capabilities", permissions=["change"])
    def relearn_capabilities(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        """Forget what was learned and set about each endpoint, then learn its default model again."""
        for endpoint in queryset:
            deleted = services.capability_reset(endpoint=endpoint)
            report = diagnostics.connectivity_test_sync(endpoint)
            learned = ", ".join(f"{name} = {value!r}" for name, value in report.learned.items()) or "the standard"
            verdict = "passed" if report.ok else f"failed ({report.error_kind}): {report.error}"
            self.message_user(request, f"{endpoint.name}: forgot {deleted} model(s); {report.model} re-learned, "
                                       f"connectivity test {verdict}; it accepts {learned}.",
                              messages.SUCCESS if report.ok else messages.WARNING)


class CapabilityAdminForm(RejectLoneSurrogatesMixin, forms.ModelForm):
    relearn = forms.MultipleChoiceField(
        required=False, label="Hand back to learning", widget=forms.CheckboxSelectMultiple,
        choices=[(name, name.replace("_", " ")) for name in capabilities.FIELDS],
        help_text="Ticked fields are no longer set by a person: the server's answers decide them again.")

    class Meta:
        model = Capability
        fields = ["endpoint", "model", *capabilities.FIELDS]

    def values(self) -> dict[str, Any]:
        """For llm.services.capability_set: the fields changed here become a person's; None for the ones
        handed back to learning."""
        values: dict[str, Any] = {name: self.cleaned_data[name] for name in capabilities.FIELDS
                                  if name in self.changed_data}
        return {**values, **dict.fromkeys(self.cleaned_data.get("relearn") or [])}


@admin.register(Capability)
class CapabilityAdmin(EndpointPermissionsMixin, admin.ModelAdmin):
    """Saving goes through llm.services.capability_set: the fields changed become a person's; deleting forgets the model."""

    form = CapabilityAdminForm
    list_display = ["endpoint", "model", *capabilities.FIELDS, "overridden_fields", "learned_at"]
    list_filter = ["endpoint"]
    search_fields = ["model", "endpoint__name"]
    readonly_fields = ["overridden", "evidence", "learned_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["endpoint", "model"]}),
        ("What the server accepts", {"fields": [*capabilities.FIELDS, "relearn"]}),
        ("Where it came from", {"fields": ["overridden", "evidence", "learned_at", "updated_at"]}),
    ]

    @admin.display(description="set by a person")
    def overridden_fields(self, row: Capability) -> str:
        return ", ".join(row.overridden) or "—"

    def get_readonly_fields(self, request: HttpRequest, obj: Capability | None = None) -> list[str]:
        # A row belongs to one endpoint and model: another model is another row.
        return [*self.readonly_fields, *(["endpoint", "model"] if obj is not None else [])]

    def save_model(self, request: HttpRequest, obj: Capability, form: forms.Form, change: bool) -> None:
        assert isinstance(form, CapabilityAdminForm)
        saved = services.capability_set(endpoint=obj.endpoint, model=obj.model, values=form.values())
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Capability) -> None:
        services.capability_reset(endpoint=obj.endpoint, model=obj.model)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Capability]) -> None:
        for row in queryset.select_related("endpoint"):
            services.capability_reset(endpoint=row.endpoint, model=row.model)


@admin.register(CachedResponse)
class CachedResponseAdmin(admin.ModelAdmin):
    """The response cache, read-only: looking needs its view permission and the endpoints'; its delete
    permission purges answers (the selected ones, or every expired one)."""

    list_display = ["key_start", "endpoint", "model", "completion_tokens", "created_at", "expires_at"]
    list_filter = ["endpoint", "model"]
    search_fields = ["key", "model"]
    list_select_related = ["endpoint"]
    date_hierarchy = "created_at"
    actions = ["purge", "prune_expired"]

    @admin.display(description="key")
    def key_start(self, row: CachedResponse) -> str:
        return row.key[:16]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perms(["llm.view_cachedresponse", "llm.view_endpoint"])

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_view_permission(request) and request.user.has_perm("llm.delete_cachedresponse")

    def delete_model(self, request: HttpRequest, obj: CachedResponse) -> None:
        cache_purge(ids=[obj.pk])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[CachedResponse]) -> None:
        cache_purge(ids=list(queryset.values_list("pk", flat=True)))

    @admin.action(description="Purge the selected answers (later identical requests call the LLM)",
                  permissions=["delete"])
    def purge(self, request: HttpRequest, queryset: QuerySet[CachedResponse]) -> None:
        deleted = cache_purge(ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Purged {deleted} cached answers.", messages.SUCCESS)

    @admin.action(description="Delete every expired answer (as manage.py cache_prune)", permissions=["delete"])
    def prune_expired(self, request: HttpRequest, queryset: QuerySet[CachedResponse]) -> None:
        self.message_user(request, f"Deleted {cache_prune()} expired cached answers.", messages.SUCCESS)
