import django_filters

from releases.models import LabelMove


class LabelMoveFilter(django_filters.FilterSet):
    label = django_filters.CharFilter(max_length=200, help_text="Only the moves of this label.")

    class Meta:
        model = LabelMove
        fields = ["label"]
