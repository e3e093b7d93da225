"""Experiments in the admin: records, shown read-only (an experiment is started from the pages, the API or
`manage.py run_experiment`); cancelling and retrying errored cells go through experiments.services."""
from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from core.admin import ReadOnlyMixin
from core.money import money_text
from core.paginators import CappedCountPaginator
from experiments import services
from experiments.models import ACTIVE_EXPERIMENT_STATUSES, Cell, Experiment, Variant
from experiments.selectors import variant_summaries


def _cost(nano: int | None, currency: str) -> str:
    if nano is None:
        return "—"
    return money_text(nano, currency) if currency else "free"


class VariantInline(ReadOnlyMixin, admin.TabularInline):
    model = Variant
    extra = 0
    fields = readonly_fields = ["position", "name", "release", "label"]


@admin.register(Experiment)
class ExperimentAdmin(ReadOnlyMixin, admin.ModelAdmin):
    inlines = [VariantInline]
    list_display = ["id", "name", "workflow", "status", "done_of", "succeeded", "failed", "running", "queued",
                    "cost_display", "created_at"]
    list_display_links = ["id", "name"]
    list_filter = ["status", "workflow"]
    list_select_related = ["workflow"]
    search_fields = ["name"]
    actions = ["cancel_experiments", "retry_errored_cells"]
    fieldsets = [
        (None, {"fields": [("name", "workflow", "dataset_version"), ("status", "stop_reason"), "mapping_display",
                           ("repeats", "concurrency", "budget_display", "cache_mode_display"), "cells_link"]}),
        ("Counts", {"fields": [("cell_count", "queued", "running"), ("succeeded", "failed", "cancelled", "skipped"),
                               ("cost_display", "unpriced"), ("prompt_tokens", "completion_tokens")]}),
        ("Per variant", {"fields": ["summaries"]}),
        (None, {"fields": [("created_by", "created_at", "started_at", "finished_at")]}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Experiment | None = None) -> list[str]:
        return [f.name for f in Experiment._meta.fields] + ["mapping_display", "budget_display", "cells_link",
                                                             "cost_display", "summaries", "cache_mode_display"]

    @admin.display(description="done")
    def done_of(self, experiment: Experiment) -> str:
        return f"{experiment.done}/{experiment.cell_count}"

    @admin.display(description="cost")
    def cost_display(self, experiment: Experiment) -> str:
        text = _cost(experiment.cost_nano, experiment.cost_currency) if experiment.done else "—"
        return f"{text} + {experiment.unpriced} unpriced" if experiment.unpriced else text

    @admin.display(description="budget")
    def budget_display(self, experiment: Experiment) -> str:
        return "none" if experiment.budget_nano is None else money_text(experiment.budget_nano,
                                                                         experiment.budget_currency)

    @admin.display(description="response cache")
    def cache_mode_display(self, experiment: Experiment) -> str:
        return experiment.cache_mode_label

    @admin.display(description="mapping")
    def mapping_display(self, experiment: Experiment) -> str:
        return format_html('<pre class="ae-pre">{}</pre>', json.dumps(experiment.mapping, indent=2, ensure_ascii=False))

    @admin.display(description="cells")
    def cells_link(self, experiment: Experiment) -> str:
        url = reverse("admin:experiments_cell_changelist") + f"?experiment__id__exact={experiment.pk}"
        return format_html('<a href="{}">{} cells</a>', url, experiment.cell_count)

    @admin.display(description="aggregates")
    def summaries(self, experiment: Experiment) -> str:
        rows = ((s.variant.name, s.cells, s.succeeded, s.failed,
                 "—" if s.success_rate is None else f"{s.success_rate:.0%}", s.median_latency_ms or "—",
                 s.p95_latency_ms or "—", s.prompt_tokens + s.completion_tokens, s.cost_text)
                for s in variant_summaries(experiment))
        return format_html(
            "<table><tr><th>variant</th><th>cells</th><th>succeeded</th><th>failed</th><th>success</th>"
            "<th>median ms</th><th>p95 ms</th><th>tokens</th><th>cost</th></tr>{}</table>",
            format_html_join("", "<tr>" + "<td>{}</td>" * 9 + "</tr>", rows))

    # Read-only records whose cancel / retry are allowed to whoever may change experiments, and delete
    # (of an experiment that has ended) to whoever may delete them.
    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("experiments.change_experiment")

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("experiments.change_experiment")

    def has_delete_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        if obj is not None and obj.status in ACTIVE_EXPERIMENT_STATUSES:
            return False
        return request.user.has_perm("experiments.delete_experiment")

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[list[str], dict[str, int], set[str], list[str]]:
        # Counts, not a list: an experiment may have 100,000 cells (read-only, deleted with it; runs are kept).
        experiments = list(objs)
        cells = Cell.objects.filter(experiment__in=experiments).count()
        variants = Variant.objects.filter(experiment__in=experiments).count()
        counts = {"experiments": len(experiments), "variants": variants, "cells": cells}
        return [str(e) for e in experiments], counts, set(), []

    def delete_model(self, request: HttpRequest, obj: Experiment) -> None:
        services.experiment_delete(experiment=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        kept = []
        for experiment in queryset:
            try:
                services.experiment_delete(experiment=experiment)
            except ValidationError:
                kept.append(str(experiment.pk))
        if kept:
            self.message_user(request, f"Not deleted (still running: cancel first): {', '.join(kept)}.",
                              messages.WARNING)

    @admin.action(description="Cancel selected experiments", permissions=["cancel"])
    def cancel_experiments(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        stopped = [services.experiment_cancel(experiment=e).pk for e in queryset if e.status == "running"]
        skipped = queryset.count() - len(stopped)
        self.message_user(request, f"Cancelled {len(stopped)} experiment(s)." + (
            f" {skipped} had already stopped." if skipped else ""), messages.SUCCESS if stopped else messages.WARNING)

    @admin.action(description="Retry errored cells of selected experiments", permissions=["retry"])
    def retry_errored_cells(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        for experiment in queryset:
            try:
                count = services.experiment_retry_errors(experiment=experiment)
            except ValidationError as exc:
                self.message_user(request, f"{experiment}: {' '.join(exc.messages)}", messages.ERROR)
                continue
            self.message_user(request, f"{experiment}: {count} errored cell(s) queued again.",
                              messages.SUCCESS if count else messages.INFO)


@admin.register(Cell)
class CellAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """An experiment's cells, a page at a time (an experiment may have 100,000): each links to its run."""

    list_display = ["id", "experiment", "variant", "case", "repeat", "status", "run_link", "latency_ms",
                    "tokens", "cost_display", "tries"]
    list_filter = ["status", "experiment"]
    list_select_related = ["experiment", "variant"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 100
    fields = readonly_fields = ["experiment", "variant", "item", "row", "position", "repeat", "status", "run_link",
                                "tries", "latency_ms", "prompt_tokens", "completion_tokens", "cost_display", "error",
                                "finished_at"]

    # Cells are part of their experiment: whoever may see experiments may see their cells.
    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("experiments.view_experiment")

    @admin.display(description="case", ordering="position")
    def case(self, cell: Cell) -> str:
        return f"#{cell.position + 1}"

    @admin.display(description="tokens")
    def tokens(self, cell: Cell) -> int | None:
        if cell.prompt_tokens is None:
            return None
        return cell.prompt_tokens + (cell.completion_tokens or 0)

    @admin.display(description="cost")
    def cost_display(self, cell: Cell) -> str:
        if cell.cost_nano is None:
            return "" if cell.status in ("queued", "running") else "unpriced"
        return _cost(cell.cost_nano, cell.cost_currency)

    @admin.display(description="run")
    def run_link(self, cell: Cell) -> str:
        if cell.run_id is None:
            return "—"
        return format_html('<a href="{}">run {}</a>', reverse("admin:runs_run_change", args=[cell.run_id]), cell.run_id)
