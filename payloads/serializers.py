"""Shape of the payloads API; the rules live in the models and payloads/services.py."""
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from blocks import templating
from core.serializers import NamedRefSerializer, RejectUnknownFieldsMixin, StrictModelSerializer
from core.versions_api import VersionMessageField
from payloads.models import Payload, PayloadBlock


class PayloadBlockSerializer(StrictModelSerializer):
    block_name = serializers.CharField(source="block.name", read_only=True)

    class Meta:
        model = PayloadBlock
        fields = ["block", "role", "block_name"]
        extra_kwargs = {"role": {"required": True}}


class PayloadUsersSerializer(serializers.Serializer):
    workflows = NamedRefSerializer(many=True, read_only=True)


class PayloadSerializer(StrictModelSerializer):
    blocks = PayloadBlockSerializer(many=True, source="payload_blocks", required=False,
                                    help_text="Ordered blocks; on write, the whole list is replaced.")
    variables = serializers.SerializerMethodField(help_text="Union of the variables of its blocks.")
    used_by = serializers.SerializerMethodField(help_text="Workflows with a step that runs this payload.")
    version_message = VersionMessageField()

    class Meta:
        model = Payload
        fields = [
            "id", "name", "description", "endpoint", "model", "temperature", "top_p", "max_tokens", "stop", "seed",
            "presence_penalty", "frequency_penalty", "stream", "json_schema", "structured_retries", "pass_reasoning", "extra_params",
            "cache_ttl_seconds",
            "blocks", "variables", "used_by", "created_at", "updated_at", "version_message",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_variables(self, payload: Payload) -> list[str]:
        # Reads the prefetched blocks, unlike payload_variables() which queries.
        names: set[str] = set()
        for use in payload.payload_blocks.all():
            names |= templating.variables_of(use.block.content)
        return sorted(names)

    @extend_schema_field(PayloadUsersSerializer)
    def get_used_by(self, payload: Payload) -> dict[str, list[dict[str, Any]]]:
        workflows = {step.workflow.pk: step.workflow.name for step in payload.steps.all()}
        return {"workflows": [{"id": pk, "name": name} for pk, name in sorted(workflows.items(), key=lambda i: i[1])]}


class PayloadPreviewInputSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    variables = serializers.DictField(required=False, default=dict,
                                      help_text="Values for the payload's variables, by name.")


class ChatMessageSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField()


class PayloadPreviewSerializer(serializers.Serializer):
    messages = ChatMessageSerializer(many=True, help_text="The chat messages the LLM would receive.")
    token_count = serializers.IntegerField(help_text="Prompt tokens of these messages, counted locally.")
    model = serializers.CharField(help_text="The model the payload calls.")


class PayloadPreviewErrorSerializer(serializers.Serializer):
    # Not required: a body that fails validation (e.g. an unknown field) gets field errors instead.
    variables = serializers.ListField(child=serializers.CharField(), required=False,
                                      help_text="Why the payload cannot render.")
    missing = serializers.ListField(child=serializers.CharField(), required=False,
                                    help_text="Variables without a value.")
