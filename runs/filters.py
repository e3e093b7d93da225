import django_filters

from runs.models import Run, RunStatus


class RunFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=RunStatus.choices)
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    date = django_filters.DateFilter(field_name="created_at", lookup_expr="date")

    class Meta:
        model = Run
        fields = ["workflow", "status", "source_run"]
