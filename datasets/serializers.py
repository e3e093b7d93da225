"""The API's shapes for datasets; the rules (what a case is, what makes a version) are in datasets.services."""
from __future__ import annotations

from rest_framework import serializers

from core.serializers import RejectUnknownFieldsMixin, StrictCharField, StrictModelSerializer
from datasets.importing import FORMATS
from datasets.models import Dataset, DatasetItem, DatasetVersion


class DatasetVersionSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = DatasetVersion
        fields = ["number", "content_hash", "row_count", "columns", "message", "created_by", "created_at"]
        read_only_fields = fields


class DatasetSerializer(StrictModelSerializer):
    latest_version = serializers.IntegerField(source="latest_number", read_only=True, allow_null=True, default=None)
    row_count = serializers.IntegerField(source="latest_row_count", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Dataset
        fields = ["id", "name", "description", "latest_version", "row_count", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


class DatasetItemSerializer(serializers.ModelSerializer):
    row = serializers.IntegerField(source="row_id", read_only=True, help_text="The case's stable id.")

    class Meta:
        model = DatasetItem
        fields = ["row", "position", "inputs", "expected", "metadata"]
        read_only_fields = fields

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # "assert" (promptfoo's name) is a Python keyword: it cannot be a class attribute here.
        fields["assert"] = serializers.JSONField(source="assertions", read_only=True,
                                                 help_text="The case's own assertions (evaluations), or null.")
        return fields


class CaseSerializer(serializers.Serializer):
    # Documentation only: datasets.services.case_problems checks cases, naming where each problem is.
    inputs = serializers.DictField()
    expected = serializers.JSONField(required=False, allow_null=True)
    metadata = serializers.DictField(required=False)
    # "assert": the case's own assertions (evaluations), as in promptfoo's tests.


class RowsAddSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    rows = serializers.ListField(child=serializers.JSONField(), allow_empty=False,
                                 help_text="Cases: {inputs: {...}, expected: any, metadata: {...}}.")
    message = StrictCharField(required=False, allow_blank=True, default="")


class RowsChangeSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    add = serializers.ListField(child=serializers.JSONField(), required=False, default=list)
    change = serializers.DictField(child=serializers.JSONField(), required=False, default=dict,
                                   help_text="By row id: the fields of the case to replace.")
    delete = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False, default=list)
    message = StrictCharField(required=False, allow_blank=True, default="")

    def validate_change(self, value: dict[str, object]) -> dict[int, object]:
        bad = [key for key in value if not str(key).isdigit()]
        if bad:
            raise serializers.ValidationError(f"“{bad[0]}” is not a row id.")
        return {int(key): fields for key, fields in value.items()}


class ImportSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)
    format = serializers.ChoiceField(choices=FORMATS, required=False,
                                     help_text="csv or jsonl; by default from the file's name.")
    expected_column = StrictCharField(required=False, allow_blank=True, default="",
                                      help_text="The column (CSV) or key (JSONL) of the expected output; default `expected`.")
    message = StrictCharField(required=False, allow_blank=True, default="")

    def validate(self, attrs: dict[str, object]) -> dict[str, object]:
        if not attrs.get("format"):
            name = getattr(attrs["file"], "name", "") or ""
            suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
            if suffix not in FORMATS:
                raise serializers.ValidationError({"format": ["Say csv or jsonl: the file's name does not tell."]})
            attrs["format"] = suffix
        return attrs
