from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.serializers import FieldsBuiltOnceMixin
from runs.models import Response, Run


class ResponseSerializer(FieldsBuiltOnceMixin, serializers.ModelSerializer):
    attempt_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Response
        fields = [
            "id", "index", "output_key", "payload_name", "endpoint_name", "model", "messages", "request_params",
            "output", "output_json", "reasoning", "finish_reason", "prompt_tokens", "completion_tokens",
            "tokens_estimated", "reasoning_tokens", "cached_tokens", "latency_ms", "ttft_ms", "attempts", "attempt_count", "status", "error", "copied_from", "created_at",
        ]
        read_only_fields = fields


class RunListSerializer(FieldsBuiltOnceMixin, serializers.ModelSerializer):
    total_tokens = serializers.IntegerField(read_only=True)

    class Meta:
        model = Run
        fields = [
            "id", "workflow", "workflow_name", "status", "inputs", "output", "output_json", "error",
            "step_count", "next_step", "prompt_tokens", "completion_tokens", "total_tokens", "latency_ms",
            "created_by", "created_at", "started_at", "finished_at", "source_run", "replay_from_step",
            "cancel_requested",
        ]
        read_only_fields = fields


class RunStepSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    output_key = serializers.CharField()
    payload = serializers.CharField()
    stream = serializers.BooleanField()


class RunSerializer(RunListSerializer):
    steps = serializers.SerializerMethodField(help_text="The run's steps as the workflow was when it started.")
    responses = ResponseSerializer(many=True, read_only=True)

    class Meta(RunListSerializer.Meta):
        fields = [*RunListSerializer.Meta.fields, "steps", "responses"]
        read_only_fields = fields

    @extend_schema_field(RunStepSerializer(many=True))
    def get_steps(self, run: Run) -> list[dict]:
        return [
            {"index": step["index"], "output_key": step["output_key"], "payload": step["payload"]["name"],
             "stream": step["payload"]["stream"]}
            for step in (run.snapshot or {}).get("steps", [])
        ]


class RunStartSerializer(serializers.Serializer):
    inputs = serializers.DictField(required=False, default=dict, help_text="Values of the workflow's declared inputs.")

    def validate(self, attrs: dict) -> dict:
        unknown = set(self.initial_data) - set(self.fields) if isinstance(self.initial_data, dict) else set()
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in sorted(unknown)})
        return attrs


class RunRerunSerializer(RunStartSerializer):
    inputs = serializers.DictField(required=False, help_text="Inputs to change; the rest are the source run's.")
    from_step = serializers.IntegerField(required=False, default=0, min_value=0,
                                         help_text="Index of the first step to run again; earlier steps are copied.")
