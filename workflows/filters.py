import django_filters

from workflows.models import Workflow


class WorkflowFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains", help_text="Part of the name, any case.")
    payload = django_filters.NumberFilter(field_name="steps__payload", distinct=True, min_value=1, max_value=2**63 - 1,
                                          help_text="Workflows with a step that runs this payload id.")
    block = django_filters.NumberFilter(field_name="steps__payload__payload_blocks__block", distinct=True, min_value=1, max_value=2**63 - 1,
                                        help_text="Workflows whose payloads use this block id.")

    class Meta:
        model = Workflow
        fields = ["name", "payload", "block"]
