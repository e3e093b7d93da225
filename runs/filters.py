import datetime
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django.utils import timezone
from rest_framework.filters import OrderingFilter

from core.converters import MAX_ID
from runs.models import FINAL_STATUSES, Run, RunStatus
from runs.search import runs_search
from runs.selectors import runs_labelled_anywhere


class IdFilter(django_filters.NumberFilter):
    """An id: a whole number within BigAutoField's range (else a 400 naming the filter)."""

    field_class = forms.IntegerField

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, min_value=1, max_value=MAX_ID, **kwargs)  # type: ignore[arg-type]


class RunFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=RunStatus.choices)
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    date = django_filters.DateFilter(method="filter_date", help_text="Runs created on this day (the server's time zone).")
    search = django_filters.CharFilter(method="filter_search", max_length=200,
                                       help_text="Words of the workflow name, inputs, output or error of finished "
                                                 "runs (each a word prefix, all required), or a run id.")
    release = IdFilter(field_name="release_id", help_text="Runs of this release (its id).")
    label = django_filters.CharFilter(method="filter_label", max_length=200,
                                      help_text="Runs whose release carried this label when they started.")
    block_version = IdFilter(field_name="release__block_versions",
                             help_text="Runs whose release used this block version (its id).")
    payload_version = IdFilter(field_name="release__payload_versions",
                               help_text="Runs whose release used this payload version (its id).")

    class Meta:
        model = Run
        fields = ["workflow", "status", "source_run"]

    def filter_date(self, queryset: QuerySet[Run], name: str, value: datetime.date) -> QuerySet[Run]:
        # A half-open range on created_at (its index), not a date function applied to every row.
        start = timezone.make_aware(datetime.datetime.combine(value, datetime.time.min))
        return queryset.filter(created_at__gte=start, created_at__lt=start + datetime.timedelta(days=1))

    def filter_search(self, queryset: QuerySet[Run], name: str, value: str) -> QuerySet[Run]:
        return runs_search(queryset, value)

    def filter_label(self, queryset: QuerySet[Run], name: str, value: str) -> QuerySet[Run]:
        # Only the workflow in question when the request names one (the route's or ?workflow=);
        # otherwise every workflow that has had the label.
        context = getattr(self.request, "parser_context", None) or {}
        workflow = context.get("kwargs", {}).get("pk") or self.form.cleaned_data.get("workflow")
        workflow_ids = None if workflow is None else [getattr(workflow, "pk", workflow)]
        return queryset.filter(runs_labelled_anywhere(value, workflow_ids=workflow_ids))


class RunOrderingFilter(OrderingFilter):
    """?ordering=; by latency or finish time, the list holds finished runs: their partial indexes
    (runs.models.Run.Meta) hold a run once it is final, so a step's commit maintains neither."""

    FINAL_ONLY = {"latency_ms", "finished_at"}

    def filter_queryset(self, request: Any, queryset: QuerySet[Run], view: Any) -> QuerySet[Run]:
        ordering = self.get_ordering(request, queryset, view) or []
        if any(field.lstrip("-") in self.FINAL_ONLY for field in ordering):
            queryset = queryset.filter(status__in=FINAL_STATUSES)
        return super().filter_queryset(request, queryset, view)
