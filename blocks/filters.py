import django_filters
from django.db.models import QuerySet

from blocks.models import Block


class BlockFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains", help_text="Part of the name, any case.")
    payload = django_filters.NumberFilter(field_name="payload_blocks__payload", distinct=True, min_value=1, max_value=2**63 - 1,
                                          help_text="Blocks used by this payload id.")
    used = django_filters.BooleanFilter(method="filter_used", help_text="true: used by some payload; false: unused.")

    class Meta:
        model = Block
        fields = ["name", "payload", "used"]

    def filter_used(self, queryset: QuerySet[Block], name: str, value: bool | None) -> QuerySet[Block]:
        if value is None:
            return queryset
        return queryset.filter(payload_blocks__isnull=not value).distinct()
