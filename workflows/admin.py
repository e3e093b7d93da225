from typing import Any

from adminsortable2.admin import SortableAdminBase, SortableTabularInline
from django import forms
from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse

from blocks.admin import ServiceSaveMixin, inline_rows, variable_chips, version_history
from core.forms import RejectLoneSurrogatesMixin
from payloads.services import payload_variables
from workflows.models import OnError, Step, Workflow
from workflows.services import (
    FLOW_FIELDS,
    workflow_create,
    workflow_problems,
    workflow_update,
    workflow_variable_flow,
    workflow_warnings,
)


class StepForm(RejectLoneSurrogatesMixin, forms.ModelForm):
    """A step row with its control flow; a field left empty (or not posted) takes the model's default."""

    class Meta:
        model = Step
        fields = ["output_key", "payload", *FLOW_FIELDS]
        widgets = {
            "when": forms.TextInput(attrs={"size": 18, "class": "ae-code", "placeholder": "always"}),
            "default": forms.TextInput(attrs={"size": 10}),
            "for_each": forms.TextInput(attrs={"size": 14, "class": "ae-code", "placeholder": "one call"}),
            "item_as": forms.TextInput(attrs={"size": 6, "class": "ae-code"}),
            "max_parallel": forms.NumberInput(attrs={"style": "width: 4em", "placeholder": "wf"}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["on_error"].required = False

    def clean_item_as(self) -> str:
        return self.cleaned_data.get("item_as") or "item"

    def clean_on_error(self) -> str:
        return self.cleaned_data.get("on_error") or OnError.FAIL


class StepInline(SortableTabularInline):
    model = Step
    form = StepForm
    fields = ["output_key", "payload", "payload_reads", *FLOW_FIELDS]
    readonly_fields = ["payload_reads"]
    extra = 0

    @admin.display(description="reads")
    def payload_reads(self, step: Step) -> str:
        if step.payload_id is None:
            return "-"
        return variable_chips(payload_variables(step.payload))


class WorkflowForm(RejectLoneSurrogatesMixin, forms.ModelForm):
    class Meta:
        model = Workflow
        fields = ["name", "description", "inputs", "max_parallel"]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "inputs": forms.Textarea(attrs={"rows": 4, "class": "ae-code"}),
        }
        help_texts = {
            "inputs": 'A JSON list, e.g. <code>[{"name": "topic", "default": "tides", "description": "..."}]</code>. '
                      "Steps read inputs, earlier steps' output keys, and <code>previous</code>.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["max_parallel"].required = False

    def clean_max_parallel(self) -> int:
        value = self.cleaned_data.get("max_parallel")
        return 4 if value is None else value


@admin.register(Workflow)
class WorkflowAdmin(ServiceSaveMixin, SortableAdminBase, admin.ModelAdmin):
    form = WorkflowForm
    inlines = [StepInline]
    list_display = ["name", "input_list", "step_total", "ready", "updated_at"]
    search_fields = ["name", "description"]
    list_filter = ["updated_at"]
    list_per_page = 50
    readonly_fields = ["history"]

    history = staticmethod(version_history)

    def service_save(self, request: HttpRequest, obj: Workflow | None, fields: dict[str, Any],
                     formsets: Any) -> Workflow:
        steps: Any = inline_rows(formsets, ("payload", "output_key", *FLOW_FIELDS))
        if obj is None:
            return workflow_create(steps=steps, user=request.user, **fields)
        return workflow_update(workflow=obj, data=fields, steps=steps, user=request.user)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workflow]:
        return super().get_queryset(request).annotate(step_count=Count("steps", distinct=True))

    @admin.display(description="inputs")
    def input_list(self, workflow: Workflow) -> str:
        return variable_chips(workflow.input_names)

    @admin.display(description="steps", ordering="step_count")
    def step_total(self, workflow: Workflow) -> int:
        return workflow.step_count  # type: ignore[attr-defined]

    @admin.display(description="can run", boolean=True)
    def ready(self, workflow: Workflow) -> bool:
        return not workflow_problems(workflow)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        workflow = self.get_object(request, object_id)
        if workflow is not None:
            extra_context = {**(extra_context or {}),
                             "variable_flow": workflow_variable_flow(workflow),
                             "problems": workflow_problems(workflow),
                             "warnings": workflow_warnings(workflow),
                             "workflow_inputs": workflow.input_names}
        return super().change_view(request, object_id, form_url, extra_context)
