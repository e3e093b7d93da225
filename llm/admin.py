from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from llm import diagnostics, services
from llm.models import Endpoint
from orchestrator.forms import RejectLoneSurrogatesMixin


class EndpointAdminForm(RejectLoneSurrogatesMixin, forms.ModelForm):
    base_url = forms.URLField(max_length=500, assume_scheme="https",
                              help_text=Endpoint._meta.get_field("base_url").help_text)
    # Write-only: the stored key is never rendered back, not even masked.
    api_key = forms.CharField(
        required=False, strip=True, label="API key",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave blank to keep the stored key.",
    )
    clear_api_key = forms.BooleanField(required=False, label="Clear the stored API key")

    class Meta:
        model = Endpoint
        fields = list(services.EDITABLE_FIELDS)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("clear_api_key") and cleaned.get("api_key"):
            self.add_error("clear_api_key", "Either type a new key or clear the stored one, not both.")
        return cleaned

    def api_key_change(self) -> str | None:
        """None keeps the stored key, "" clears it, anything else replaces it."""
        if self.cleaned_data.get("clear_api_key"):
            return ""
        return self.cleaned_data.get("api_key") or None


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    form = EndpointAdminForm
    list_display = ["name", "base_url", "default_model", "api_key_status", "enabled", "is_mock",
                    "max_concurrency", "timeout_seconds", "max_retries", "updated_at"]
    list_filter = ["enabled", "is_mock"]
    search_fields = ["name", "base_url", "default_model"]
    readonly_fields = ["api_key_status", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "base_url", "default_model", "enabled", "is_mock"]}),
        ("API key", {"fields": ["api_key_status", "api_key", "clear_api_key"]}),
        ("Limits", {"fields": ["timeout_seconds", "max_retries", "max_concurrency", "extra_headers"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]
    actions = ["run_connectivity_test"]

    @admin.display(description="API key")
    def api_key_status(self, endpoint: Endpoint) -> str:
        return "set" if endpoint.has_api_key else "not set"

    def save_model(self, request: HttpRequest, obj: Endpoint, form: forms.Form, change: bool) -> None:
        assert isinstance(form, EndpointAdminForm)
        fields = {name: form.cleaned_data[name] for name in services.EDITABLE_FIELDS if name in form.cleaned_data}
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
