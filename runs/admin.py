"""Runs are records: the admin shows them read-only; its actions call runs.services."""
import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from core.admin import ReadOnlyMixin
from core.money import money_text
from core.paginators import CappedCountPaginator
from runs.costs import step_cost_text
from runs.models import Response, Run, RunStatus
from runs.search import runs_search
from runs.selectors import run_metrics
from runs.services import run_cancel, run_replay
from runs.throttling import run_start_wait, too_many_runs


def pretty_json(value: Any) -> str:
    return format_html('<pre class="ae-pre">{}</pre>', json.dumps(value, indent=2, ensure_ascii=False))


class ResponseInline(ReadOnlyMixin, admin.StackedInline):
    model = Response
    extra = 0
    fk_name = "run"
    fields = [("step_number", "output_key", "status"), ("item", "item_value_display"),
              ("payload_name", "endpoint_name", "model"),
              "rendered_messages", "output", "output_json_display", "reasoning", "error",
              ("prompt_tokens", "completion_tokens", "tokens_estimated", "finish_reason"),
              ("reasoning_tokens", "cached_tokens"),
              ("latency_ms", "ttft_ms", "attempt_count"),
              ("cost_display", "cost_currency", "cost_source"), ("price_id", "price_version"), "cost_note",
              ("cache_status", "cache_saved_prompt_tokens", "cache_saved_completion_tokens", "cache_saved_latency_ms"),
              ("cache_saved_cost_nano", "cache_saved_cost_currency", "cache_stored_at"),
              "attempts_display", "request_params_display"]
    readonly_fields = [name for item in fields for name in (item if isinstance(item, tuple) else (item,))]

    @admin.display(description="step")
    def step_number(self, response: Response) -> int:
        return response.index + 1

    @admin.display(description="item value")
    def item_value_display(self, response: Response) -> str:
        # item 0 is the step itself; n >= 1 the n-th item of a map (for_each).
        return "-" if not response.item else pretty_json(response.item_value)

    @admin.display(description="messages sent")
    def rendered_messages(self, response: Response) -> str:
        return format_html_join("", '<div class="ae-message"><span class="ae-role">{}</span><pre class="ae-pre">{}</pre></div>',
                                ((m.get("role", ""), m.get("content", "")) for m in response.messages or []))

    @admin.display(description="cost")
    def cost_display(self, response: Response) -> str:
        return step_cost_text(response)

    @admin.display(description="output JSON")
    def output_json_display(self, response: Response) -> str:
        return "-" if response.output_json is None else pretty_json(response.output_json)

    @admin.display(description="attempts")
    def attempts_display(self, response: Response) -> str:
        return pretty_json(response.attempts) if response.attempts else "-"

    @admin.display(description="request parameters")
    def request_params_display(self, response: Response) -> str:
        return pretty_json(response.request_params)


@admin.register(Run)
class RunAdmin(ReadOnlyMixin, admin.ModelAdmin):
    inlines = [ResponseInline]
    change_list_template = "admin/runs/run/change_list.html"

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        return super().changelist_view(request, {**(extra_context or {}), "run_metrics": run_metrics()})

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Run], search_term: str) -> tuple[QuerySet[Run], bool]:
        if not search_term.strip():
            return queryset, False
        return runs_search(queryset, search_term), False
    list_display = ["id", "workflow_name", "status", "progress", "total_tokens", "latency_ms", "created_by", "created_at"]
    list_display_links = ["id", "workflow_name"]
    list_filter = ["status", "workflow", "created_at"]
    # A search is the runs' full-text search (runs.search), which also finds a run by its id.
    search_fields = ["=id"]
    search_help_text = "Words of the workflow, inputs, output or error of finished runs, or a run id."
    list_select_related = ["created_by"]
    # No date_hierarchy (it reads the months of every run) and no count beyond what a page needs.
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_per_page = 50  # rendering a row costs about 1 ms: 100 of them were most of the page's time
    actions = ["cancel_runs", "rerun_runs"]
    fieldsets = [
        (None, {"fields": [("workflow", "workflow_name", "status"), "inputs_display", "output", "error",
                           ("prompt_tokens", "completion_tokens", "latency_ms"), "budget_display", "cache_mode",
                           ("created_by", "created_at", "started_at", "finished_at")]}),
        ("Replay", {"classes": ["collapse"], "fields": ["source_run", "replay_from_step_number"]}),
        ("Step ledger", {"classes": ["collapse"], "fields": [
            ("next_step", "step_count"), ("lease_owner", "lease_version", "lease_expires_at"), "cancel_requested"]}),
        ("Snapshot", {"classes": ["collapse"], "fields": ["snapshot_display"]}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Run | None = None) -> list[str]:
        return [f.name for f in Run._meta.fields] + ["inputs_display", "snapshot_display", "replay_from_step_number",
                                                     "budget_display"]

    @admin.display(description="budget")
    def budget_display(self, run: Run) -> str:
        return money_text(run.budget_nano, run.budget_currency or "") if run.budget_nano is not None else "none"

    @admin.display(description="steps done")
    def progress(self, run: Run) -> str:
        return f"{min(run.next_step, run.step_count)}/{run.step_count}"

    @admin.display(description="replayed from step")
    def replay_from_step_number(self, run: Run) -> int | None:
        return None if run.replay_from_step is None else run.replay_from_step + 1

    @admin.display(description="tokens")
    def total_tokens(self, run: Run) -> int:
        return run.total_tokens

    @admin.display(description="inputs")
    def inputs_display(self, run: Run) -> str:
        return pretty_json(run.inputs)

    @admin.display(description="snapshot")
    def snapshot_display(self, run: Run) -> str:
        return pretty_json(run.snapshot)

    # Runs are read-only, but cancelling and re-running them are allowed to whoever may change/add runs.
    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("runs.change_run")

    def has_rerun_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("runs.add_run")

    @admin.action(description="Cancel selected runs", permissions=["cancel"])
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        stopped = 0
        for run in queryset:
            if run.is_finished:
                continue
            run = run_cancel(run=run)
            stopped += run.status in (RunStatus.CANCELLED, RunStatus.CANCELLING)
        skipped = queryset.count() - stopped
        self.message_user(request, f"Cancelled {stopped} run(s)." + (
            f" {skipped} had already finished." if skipped else ""), messages.SUCCESS if stopped else messages.WARNING)

    @admin.action(description="Re-run selected runs (same inputs)", permissions=["rerun"])
    def rerun_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        started = []
        for run in queryset:
            wait = run_start_wait(request)
            if wait is not None:
                self.message_user(request, f"Run {run.pk} and later were not re-run: {too_many_runs(wait)}",
                                  messages.ERROR)
                break
            try:
                started.append(run_replay(source=run, user=request.user).pk)
            except ValidationError as exc:
                problems = "; ".join(exc.messages)
                self.message_user(request, f"Run {run.pk} was not re-run: {problems}", messages.ERROR)
        if started:
            self.message_user(request, f"Started run(s) {', '.join(map(str, started))}.", messages.SUCCESS)
