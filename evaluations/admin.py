"""Evaluations in the admin: evaluations and scores are read-only records (a scoring never changes
after the fact; re-scoring errors is an action); a workflow's run checks are edited through
evaluations.services, so bad assertions are refused as everywhere else. People's reviews and blinded
choices are listed read-only: they are a reviewer's own words, given on the review pages or the API."""
from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from evaluations import services
from evaluations.models import Evaluation, Preference, Review, RunChecks, Score


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Evaluation)
class EvaluationAdmin(_ReadOnly):
    list_display = ["__str__", "status", "total", "passed", "failed", "errors", "created_at"]
    list_filter = ["status"]
    search_fields = ["scope", "note"]
    fields = readonly_fields = ["scope", "number", "note", "status", "total", "scored", "passed", "failed", "errors",
                                "assertions_text", "error", "created_by", "created_at", "finished_at"]
    actions = ["rescore_errors"]

    @admin.display(description="Assertions")
    def assertions_text(self, evaluation: Evaluation) -> str:
        return format_html("<pre>{}</pre>", json.dumps(evaluation.assertions, indent=2, ensure_ascii=False))

    @admin.action(description="Re-score the subjects that ended in error", permissions=["change"])
    def rescore_errors(self, request: HttpRequest, queryset: QuerySet[Evaluation]) -> None:
        count = sum(services.evaluation_rescore_errors(evaluation=evaluation) for evaluation in queryset)
        self.message_user(request, f"{count} subjects will be scored again.", messages.SUCCESS)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The action needs it; the form stays read-only (every field is).
        return request.user.has_perm("evaluations.change_evaluation")


@admin.register(Score)
class ScoreAdmin(_ReadOnly):
    list_display = ["id", "evaluation", "run", "outcome", "score", "reason"]
    list_filter = ["outcome"]
    list_select_related = ["evaluation"]
    raw_id_fields = ["evaluation", "run"]
    fields = readonly_fields = ["evaluation", "run", "outcome", "score", "reason", "results", "expected", "assertions",
                                "judges"]
    list_per_page = 50
    show_full_result_count = False


class RunChecksForm(forms.ModelForm):
    assertions = forms.JSONField(help_text="A JSON list of assertions (see docs/evaluations.md).")

    class Meta:
        model = RunChecks
        fields = ["workflow", "assertions", "enabled"]

    def clean_assertions(self) -> Any:
        value = self.cleaned_data["assertions"]
        try:
            services.assertions_check(value)
        except ValidationError as exc:
            raise forms.ValidationError([f"{field}: {message}" for field, found in exc.message_dict.items()
                                         for message in found]) from None
        return value


@admin.register(RunChecks)
class RunChecksAdmin(admin.ModelAdmin):
    form = RunChecksForm
    list_display = ["workflow", "enabled", "evaluation", "updated_at"]
    readonly_fields = ["evaluation", "last_run_id", "updated_by", "updated_at"]

    def save_model(self, request: HttpRequest, obj: RunChecks, form: Any, change: bool) -> None:
        saved = services.run_checks_set(workflow=form.cleaned_data["workflow"],
                                        assertions=form.cleaned_data["assertions"],
                                        enabled=form.cleaned_data["enabled"], user=request.user)
        obj.pk = saved.pk


@admin.register(Review)
class ReviewAdmin(_ReadOnly):
    list_display = ["id", "run", "verdict", "score", "reviewer", "updated_at"]
    list_filter = ["verdict"]
    list_select_related = ["reviewer"]
    search_fields = ["comment", "reviewer__username"]
    raw_id_fields = ["run"]
    fields = readonly_fields = ["run", "reviewer", "verdict", "score", "comment", "created_at", "updated_at"]
    list_per_page = 50
    show_full_result_count = False


@admin.register(Preference)
class PreferenceAdmin(_ReadOnly):
    list_display = ["id", "run_a", "run_b", "choice", "reviewer", "updated_at"]
    list_filter = ["choice"]
    list_select_related = ["reviewer"]
    search_fields = ["comment", "reviewer__username"]
    raw_id_fields = ["run_a", "run_b"]
    fields = readonly_fields = ["run_a", "run_b", "reviewer", "choice", "comment", "created_at", "updated_at"]
    list_per_page = 50
    show_full_result_count = False
