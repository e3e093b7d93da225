"""Forms of the run pages: the inputs of a workflow, and the filters of the runs list."""
from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from runs import selectors
from runs.models import Run, RunStatus
from workflows.models import Workflow


class WorkflowInputsForm(forms.Form):
    """One text field per declared input of the workflow: defaults prefilled, descriptions as help."""

    def __init__(self, workflow: Workflow, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workflow = workflow
        for item in workflow.inputs or []:
            default = item.get("default")
            self.fields[item["name"]] = forms.CharField(
                label=item["name"],
                # An input with a default may be sent empty on purpose; one without must be filled in.
                required=default is None,
                initial=default,
                strip=False,
                help_text=item.get("description") or "",
                widget=forms.Textarea(attrs={"rows": 3, **({"aria-describedby": f"id_{item['name']}_help"}
                                                           if item.get("description") else {})}),
            )

    def inputs(self) -> dict[str, str]:
        return {name: self.cleaned_data.get(name) or "" for name in self.fields}

    def add_service_errors(self, error: ValidationError) -> None:
        """Show a service's ValidationError ({"inputs": [...], "workflow": [...]}) on the form."""
        messages = error.message_dict if hasattr(error, "error_dict") else {None: error.messages}
        for field, problems in messages.items():
            for problem in problems:
                self.add_error(field if field in self.fields else None, problem)


class RunFilterForm(forms.Form):
    """Filters of the runs list; an invalid value is ignored rather than failing the page."""

    label_suffix = ""

    q = forms.CharField(required=False, label="Search", widget=forms.TextInput(
        attrs={"type": "search", "placeholder": "Workflow, input, output or error"}))
    workflow = forms.ModelChoiceField(queryset=Workflow.objects.order_by("name"), required=False,
                                      empty_label="All workflows")
    status = forms.ChoiceField(choices=[("", "All statuses"), *RunStatus.choices], required=False)

    def runs(self) -> QuerySet[Run]:
        runs = selectors.run_list().select_related("created_by")
        if not self.is_valid():
            return runs
        data = self.cleaned_data
        if data["workflow"]:
            runs = runs.filter(workflow=data["workflow"])
        if data["status"]:
            runs = runs.filter(status=data["status"])
        if data["q"]:
            text = data["q"].strip()
            match = (Q(workflow_name__icontains=text) | Q(error__icontains=text) | Q(output__icontains=text)
                     | Q(inputs__icontains=text))
            if text.isdigit():
                match |= Q(pk=int(text))
            runs = runs.filter(match)
        return runs

    @property
    def is_filtered(self) -> bool:
        return self.is_valid() and any(self.cleaned_data.values())
