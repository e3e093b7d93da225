"""Shape of the blocks API; the rules live in the models and blocks/services.py."""
from typing import Any

from django.db import models
from django.http import QueryDict
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from blocks.models import Block

# (Comments, not docstrings, on these bases: drf-spectacular would show them as every subclass's description.)

class RejectUnknownFieldsMixin:
    # A typo'd field is a 400 instead of silently ignored. Works nested too: a ListSerializer
    # runs its child's to_internal_value for each item.

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields)  # type: ignore[attr-defined]
            if isinstance(data, QueryDict):
                # A form-encoded body (the browsable API's HTML form) carries Django's CSRF token.
                unknown.discard("csrfmiddlewaretoken")
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in sorted(unknown)})
        return super().to_internal_value(data)  # type: ignore[misc]


class StrictCharField(serializers.CharField):
    # Refuses numbers and booleans instead of turning them into text.

    default_error_messages = {"not_a_string": "Must be a string, not {kind}."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string", kind=type(data).__name__)
        return super().to_internal_value(data)


class StrictModelSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    # For our write APIs: unknown fields and non-string text are 400s.

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
    }


class NamedRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)


class BlockUsersSerializer(serializers.Serializer):
    payloads = NamedRefSerializer(many=True, read_only=True)
    workflows = NamedRefSerializer(many=True, read_only=True)


def block_users(block: Block) -> dict[str, list[dict[str, Any]]]:
    """Payloads and workflows that use the block; reads what BlockViewSet prefetches."""
    payloads: dict[int, str] = {}
    workflows: dict[int, str] = {}
    for use in block.payload_blocks.all():
        payloads[use.payload.pk] = use.payload.name
        for step in use.payload.steps.all():
            workflows[step.workflow.pk] = step.workflow.name
    return {
        "payloads": [{"id": pk, "name": name} for pk, name in sorted(payloads.items(), key=lambda item: item[1])],
        "workflows": [{"id": pk, "name": name} for pk, name in sorted(workflows.items(), key=lambda item: item[1])],
    }


class BlockSerializer(StrictModelSerializer):
    variables = serializers.ListField(child=serializers.CharField(), read_only=True,
                                      help_text="Variables the template reads, derived from its content.")
    used_by = serializers.SerializerMethodField(help_text="Payloads and workflows that use this block.")

    class Meta:
        model = Block
        fields = ["id", "name", "description", "content", "variables", "used_by", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    @extend_schema_field(BlockUsersSerializer)
    def get_used_by(self, block: Block) -> dict[str, list[dict[str, Any]]]:
        return block_users(block)
