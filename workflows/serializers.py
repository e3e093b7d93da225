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
    """A step; its control flow (issue 22) is optional on write, each field taking the model's default."""

    payload_name = serializers.CharField(source="payload.name", read_only=True)

    class Meta:
        model = Step
        fields = ["payload", "output_key", "payload_name", "when", "default", "for_each", "item_as", "max_parallel",
                  "on_error"]
        extra_kwargs = {"default": {"trim_whitespace": False}, "when": {"trim_whitespace": False},
                        "item_as": {"allow_blank": False}}

    def get_fields(self) -> dict[str, serializers.Field]:
        # The model's `item_as` is `as` to the API and in exports (a Python keyword cannot be a field name here).
        fields = super().get_fields()
        fields["as"] = fields.pop("item_as")
        fields["as"].source = "item_as"
        return fields


class ProblemSerializer(serializers.Serializer):
    step = serializers.IntegerField(allow_null=True, help_text="1-based step number; null: the whole workflow.")
    output_key = serializers.CharField(required=False)
    payload = serializers.CharField(required=False, help_text="Payload name.")
    block = serializers.CharField(required=False, help_text="Block name.")
    variable = serializers.CharField(required=False)
    field = serializers.CharField(required=False, help_text='The step\'s field: "when", "for_each" or "as"; absent: a block.')
    level = serializers.CharField(required=False, help_text='"warning" for a warning; absent for a problem.')
    message = serializers.CharField()


class VariableReadSerializer(serializers.Serializer):
    variable = serializers.CharField()
    block = serializers.CharField(allow_null=True, help_text="null: read by the step's `when` or `for_each`.")
    field = serializers.CharField(required=False, help_text='"when" or "for_each" when not read by a block.')
    source = serializers.CharField(allow_null=True,
                                   help_text='"input", "step:<output_key>", "item" (a map\'s item), or null: unprovided.')


class StepFlowSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="0-based step index.")
    output_key = serializers.CharField()
    payload = serializers.CharField()
    reads = VariableReadSerializer(many=True)
    needs = serializers.ListField(child=serializers.IntegerField(),
                                  help_text="0-based indexes of the earlier steps it waits for.")
    level = serializers.IntegerField(help_text="Depth in the derived graph: steps of one level may run side by side.")
    when = serializers.CharField()
    default = serializers.CharField()
    for_each = serializers.CharField()
    item_as = serializers.CharField()
    max_parallel = serializers.IntegerField(allow_null=True)
    on_error = serializers.CharField()


class WorkflowValidationSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    problems = ProblemSerializer(many=True)
    warnings = ProblemSerializer(many=True, help_text="What may surprise at run time without stopping a run.")


class WorkflowSerializer(StrictModelSerializer):
    inputs = WorkflowInputSerializer(many=True, required=False, help_text="Declared inputs of a run.")
    steps = StepSerializer(many=True, required=False,
                           help_text="Ordered steps; on write, the whole list is replaced.")
    problems = serializers.SerializerMethodField(help_text="Why the workflow cannot run; empty: it can.")
    warnings = serializers.SerializerMethodField(help_text="What may surprise at run time without stopping a run.")
    variable_flow = serializers.SerializerMethodField(help_text="Per step, each variable it reads and its source.")
    version_message = VersionMessageField()

    class Meta:
        model = Workflow
        fields = ["id", "name", "description", "inputs", "steps", "problems", "warnings", "variable_flow",
                  "max_parallel", "budget", "budget_currency", "created_at", "updated_at", "version_message"]
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

    @extend_schema_field(ProblemSerializer(many=True))
    def get_warnings(self, workflow: Workflow) -> list[dict[str, Any]]:
        return services.workflow_warnings(workflow, steps=self._steps(workflow))

    @extend_schema_field(StepFlowSerializer(many=True))
    def get_variable_flow(self, workflow: Workflow) -> list[dict[str, Any]]:
        return services.workflow_variable_flow(workflow, steps=self._steps(workflow))
