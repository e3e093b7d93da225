"""Forms of the Workflow Builder. Inputs and steps arrive as parallel lists in page order."""
from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict

from core.forms import RejectLoneSurrogatesMixin, ServiceErrorsMixin
from payloads.models import Payload
from workflows.models import validate_variable_name
from workflows.services import StepSpec


class WorkflowForm(RejectLoneSurrogatesMixin, ServiceErrorsMixin, forms.Form):
    label_suffix = ""

    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    budget = forms.DecimalField(
        label="Budget", required=False, min_value=0, max_digits=14, decimal_places=6,
        help_text="The default cost cap of its runs: a run stops before a step whose worst case would pass it. "
                  "Empty: no cap. A run can set its own.",
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal", "placeholder": "No cap",
                                        "aria-describedby": "id_budget_help"}))
    budget_currency = forms.CharField(label="Currency", max_length=3, required=False, initial="USD",
                                      widget=forms.TextInput(attrs={"size": 4, "spellcheck": "false"}))

    def clean_budget_currency(self) -> str:
        return (self.cleaned_data.get("budget_currency") or "").strip().upper() or "USD"


def declared_inputs(data: QueryDict) -> list[dict[str, Any]]:
    """Input rows as Workflow.inputs stores them; an empty default means "no default" (must be given)."""
    inputs = []
    rows = zip(data.getlist("input_name"), data.getlist("input_default"), data.getlist("input_description"),
               strict=False)
    for name, default, description in rows:
        if not name.strip() and not default and not description:
            continue  # a blank row the person added and left
        item: dict[str, Any] = {"name": name.strip()}
        if default:
            item["default"] = default
        if description.strip():
            item["description"] = description.strip()
        inputs.append(item)
    return inputs


def step_rows(data: QueryDict) -> list[dict[str, Any]]:
    """Step rows as posted, each with its payload (or None) and its own problems, for redrawing the page."""
    payload_ids, output_keys = data.getlist("step_payload"), data.getlist("step_output")
    found = Payload.objects.in_bulk([int(i) for i in payload_ids if i.isdigit()])
    rows = []
    for payload_id, output_key in zip(payload_ids, output_keys, strict=False):
        payload = found.get(int(payload_id)) if payload_id.isdigit() else None
        problems = [] if payload else ["Choose a payload."]
        try:
            validate_variable_name(output_key.strip())
        except ValidationError as exc:
            problems.append(f"Output name: {exc.messages[0]}")
        rows.append({"payload": payload, "output_key": output_key.strip(), "problems": problems})
    return rows


def step_specs(rows: list[dict[str, Any]]) -> list[StepSpec]:
    return [{"payload": row["payload"], "output_key": row["output_key"]} for row in rows]
