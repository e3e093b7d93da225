"""The API's shape of releases, labels and label moves. How a release did (`impact`) is computed by
the view (runs.selectors.release_impact) and handed over in the context as {release id: Impact}."""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.converters import MAX_ID
from core.serializers import RejectUnknownFieldsMixin, StrictCharField
from releases.models import Label, LabelMove, Release


class ReleaseRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    number = serializers.IntegerField(read_only=True)


class ImpactSerializer(serializers.Serializer):
    runs = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    success_rate = serializers.FloatField(allow_null=True, help_text="Of the runs that succeeded or failed; "
                                                                     "null when none finished so.")
    median_latency_ms = serializers.IntegerField(allow_null=True, help_text="Of the runs that succeeded.")
    tokens = serializers.IntegerField()


class ReleaseSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None,
                                   help_text="Who cut it, or whose run created it; null when unknown.")
    labels = serializers.SerializerMethodField(help_text="The labels pointing at it now.")
    workflow_version = serializers.IntegerField(source="workflow_version.number", read_only=True, allow_null=True,
                                                default=None, help_text="The workflow's version number in this tree.")
    impact = serializers.SerializerMethodField(help_text="How its runs did.")

    class Meta:
        model = Release
        fields = ["id", "workflow", "workflow_name", "number", "content_hash", "message", "author", "created_at",
                  "cut_by_hand", "labels", "workflow_version", "impact"]
        read_only_fields = fields

    def get_labels(self, release: Release) -> list[str]:
        return sorted(label.name for label in release.labels.all())

    @extend_schema_field(ImpactSerializer)
    def get_impact(self, release: Release) -> dict[str, Any] | None:
        impact = self.context.get("impact", {}).get(release.pk)
        return None if impact is None else impact.as_dict()


class ReleaseRunsSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    url = serializers.URLField(help_text="The runs list filtered to this release.")


class ReleaseDetailSerializer(ReleaseSerializer):
    runs = serializers.SerializerMethodField(help_text="How many runs ran it (finished or not), and where to list them.")

    class Meta(ReleaseSerializer.Meta):
        fields = [*ReleaseSerializer.Meta.fields, "snapshot", "steps", "runs"]
        read_only_fields = fields

    @extend_schema_field(ReleaseRunsSerializer)
    def get_runs(self, release: Release) -> dict[str, Any]:
        return {"count": self.context["runs_count"], "url": self.context["runs_url"]}


class ReleaseCutSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    message = StrictCharField(required=False, allow_blank=True, default="", max_length=2000,
                              help_text="Why this release; kept if the tree already had a release without one.")


class LabelSerializer(serializers.ModelSerializer):
    release = ReleaseRefSerializer(read_only=True)
    updated_by = serializers.CharField(source="updated_by.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Label
        fields = ["name", "release", "updated_by", "updated_at"]
        read_only_fields = fields


class ReleaseIdField(serializers.IntegerField):
    """A release by id; shown as the id (the browsable API's PUT form starts from the label)."""

    def to_representation(self, value: Any) -> int:
        return super().to_representation(getattr(value, "pk", value))


class LabelSetSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    release = ReleaseIdField(min_value=1, max_value=MAX_ID, help_text="The id of one of this workflow's releases.")
    reason = StrictCharField(required=False, allow_blank=True, default="", max_length=2000,
                             help_text="Why: kept in the label's history.")

    def validate_release(self, value: int) -> Release:
        release = Release.objects.filter(pk=value).first()
        if release is None:
            raise serializers.ValidationError(f"No release {value}.")
        return release


class LabelDeleteSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    reason = StrictCharField(required=False, allow_blank=True, default="", max_length=2000,
                             help_text="Why: kept in the label's history.")


class LabelMoveSerializer(serializers.ModelSerializer):
    action = serializers.ChoiceField(choices=["created", "moved", "deleted"], read_only=True)
    from_release = ReleaseRefSerializer(read_only=True, allow_null=True, help_text="Null when the label was created.")
    to_release = ReleaseRefSerializer(read_only=True, allow_null=True, help_text="Null when the label was deleted.")
    moved_by = serializers.CharField(source="moved_by.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = LabelMove
        fields = ["id", "label", "action", "from_release", "to_release", "reason", "moved_by", "moved_at"]
        read_only_fields = fields


class ReleaseDiffSerializer(serializers.Serializer):
    """Two releases compared, the older on the left (`old`); `old` is null for a first release (all added)."""

    old = ReleaseRefSerializer(allow_null=True)
    new = ReleaseRefSerializer()
    changed = serializers.BooleanField()
    inputs = serializers.JSONField()
    steps = serializers.JSONField(help_text="Per step: status (added, removed, moved, changed, same), changed "
                                            "settings field by field, blocks word by word.")
