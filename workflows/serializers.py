"""Shape of the workflows API; the rules live in the models and workflows/services.py."""
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.serializers import RejectUnknownFieldsMixin, StrictCharField, StrictModelSerializer
from core.versions_api import VersionMessageField
from workflows import services
from workflows.models import Step, Workflow, validate_inputs, validate_variable_name


class WorkflowInputSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    name = StrictCharField(max_length=100, validators=[validate_variable_name])
    default = StrictCharField(required=False, allow_blank=True, allow_null=True, trim_whitespace=False,
                                    help_text="Used when a run does not give this input.")
    description = StrictCharField(required=False, allow_blank=True, allow_null=True)


class StepSerializer(StrictModelSerializer):
    payload_name = serializers.CharField(source="payload.name", read_only=True)

    class Meta:
        model = Step
        fields = ["payload", "output_key", "payload_name"]


class ProblemSerializer(serializers.Serializer):
    step = serializers.IntegerField(allow_null=True, help_text="1-based step number; null: the whole workflow.")
    output_key = serializers.CharField(required=False)
    payload = serializers.CharField(required=False, help_text="Payload name.")
    block = serializers.CharField(required=False, help_text="Block name.")
    variable = serializers.CharField(required=False)
    message = serializers.CharField()


class VariableReadSerializer(serializers.Serializer):
    variable = serializers.CharField()
    block = serializers.CharField()
    source = serializers.CharField(allow_null=True, help_text='"input", "step:<output_key>", or null: unprovided.')


class StepFlowSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="0-based step index.")
    output_key = serializers.CharField()
    payload = serializers.CharField()
    reads = VariableReadSerializer(many=True)


class WorkflowValidationSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    problems = ProblemSerializer(many=True)


class WorkflowSerializer(StrictModelSerializer):
    inputs = WorkflowInputSerializer(many=True, required=False, help_text="Declared inputs of a run.")
    steps = StepSerializer(many=True, required=False,
                           help_text="Ordered steps; on write, the whole list is replaced.")
    problems = serializers.SerializerMethodField(help_text="Why the workflow cannot run; empty: it can.")
    variable_flow = serializers.SerializerMethodField(help_text="Per step, each variable it reads and its source.")
    version_message = VersionMessageField()

    class Meta:
        model = Workflow
        fields = ["id", "name", "description", "inputs", "steps", "problems", "variable_flow", "budget",
                  "budget_currency", "created_at", "updated_at", "version_message"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_inputs(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        plain = [dict(item) for item in inputs]
        try:
            validate_inputs(plain)  # the model's rule: duplicates, reserved names
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc
        return plain

    def _steps(self, workflow: Workflow) -> list[services.StepData]:
        """The workflow's steps as services read them; for a list, every workflow's in two queries at once."""
        known = self.context.setdefault("workflow_steps", {})
        if workflow.pk not in known:
            listed = self.parent.instance if isinstance(self.parent, serializers.ListSerializer) else None
            known.update(services.workflow_steps_many([w.pk for w in listed] if listed else [workflow.pk]))
        return known[workflow.pk]

    @extend_schema_field(ProblemSerializer(many=True))
    def get_problems(self, workflow: Workflow) -> list[dict[str, Any]]:
        return services.workflow_problems(workflow, steps=self._steps(workflow))

    @extend_schema_field(StepFlowSerializer(many=True))
    def get_variable_flow(self, workflow: Workflow) -> list[dict[str, Any]]:
        return services.workflow_variable_flow(workflow, steps=self._steps(workflow))
