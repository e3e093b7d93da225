from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from llm import diagnostics, services
from llm.forms import EndpointForm
from llm.models import Endpoint


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ["name", "base_url", "default_model", "api_key_status", "enabled", "is_mock",
                    "max_concurrency", "timeout_seconds", "max_retries", "updated_at"]
    list_filter = ["enabled", "is_mock"]
    search_fields = ["name", "base_url", "default_model"]
    readonly_fields = ["api_key_status", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "base_url", "default_model", "enabled", "is_mock"]}),
        ("API key", {"fields": ["api_key_status", "api_key", "clear_api_key"]}),
        ("Limits and headers", {"fields": ["timeout_seconds", "max_retries", "max_concurrency", "headers"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]
    actions = ["run_connectivity_test"]

    @admin.display(description="API key")
    def api_key_status(self, endpoint: Endpoint) -> str:
        return "set" if endpoint.has_api_key else "not set"

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
