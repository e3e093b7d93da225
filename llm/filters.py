import django_filters

from llm.models import Endpoint


class EndpointFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    base_url = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Endpoint
        fields = ["name", "base_url", "default_model", "enabled", "is_mock"]
