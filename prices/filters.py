import django_filters

from prices.models import Price


class PriceFilter(django_filters.FilterSet):
    model = django_filters.CharFilter(lookup_expr="icontains", max_length=200,
                                      help_text="Entries whose model (name or pattern) contains this.")
    endpoint = django_filters.NumberFilter(method="filter_endpoint",
                                           help_text="Entries limited to this endpoint's id; 0: the global ones.")
    currency = django_filters.CharFilter(max_length=3)

    class Meta:
        model = Price
        fields = ["model", "match", "endpoint", "currency"]

    def filter_endpoint(self, queryset, name, value):  # type: ignore[no-untyped-def]
        return queryset.filter(endpoint__isnull=True) if value == 0 else queryset.filter(endpoint_id=value)
