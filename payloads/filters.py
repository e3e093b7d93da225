import django_filters

from payloads.models import Payload


class PayloadFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains", help_text="Part of the name, any case.")
    block = django_filters.NumberFilter(field_name="payload_blocks__block", distinct=True, min_value=1, max_value=2**63 - 1,
                                        help_text="Payloads that use this block id.")
    workflow = django_filters.NumberFilter(field_name="steps__workflow", distinct=True, min_value=1, max_value=2**63 - 1,
                                           help_text="Payloads run by this workflow id.")

    class Meta:
        model = Payload
        fields = ["name", "endpoint", "model", "stream", "block", "workflow"]
