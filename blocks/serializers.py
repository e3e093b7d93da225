"""Shape of the blocks API; the rules live in the models and blocks/services.py."""
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from blocks.models import Block
from core.serializers import NamedRefSerializer, StrictModelSerializer
from core.versions_api import VersionMessageField


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
    version_message = VersionMessageField()

    class Meta:
        model = Block
        fields = ["id", "name", "description", "content", "variables", "used_by", "created_at", "updated_at",
                  "version_message"]
        read_only_fields = ["id", "created_at", "updated_at"]

    @extend_schema_field(BlockUsersSerializer)
    def get_used_by(self, block: Block) -> dict[str, list[dict[str, Any]]]:
        return block_users(block)
