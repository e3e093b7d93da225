"""Forms of the Workflow Builder. Inputs and steps arrive as parallel lists in page order."""
from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict

from core.forms import RejectLoneSurrogatesMixin, ServiceErrorsMixin
from payloads.models import Payload
from workflows.models import MAX_PARALLEL, OnError, validate_variable_name
from workflows.services import FLOW_FIELDS, StepSpec


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
    max_parallel = forms.IntegerField(
        label="Steps at once", required=False, min_value=1, max_value=MAX_PARALLEL, initial=4,
        help_text="How many of a run's steps may call their LLM at the same time; steps that do not read each "
                  "other's output run side by side.",
        widget=forms.NumberInput(attrs={"aria-describedby": "id_max_parallel_help"}))

    def clean_budget_currency(self) -> str:
        return (self.cleaned_data.get("budget_currency") or "").strip().upper() or "USD"

    def clean_max_parallel(self) -> int:
        value = self.cleaned_data.get("max_parallel")
        return 4 if value is None else value


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


# Each step row's control-flow inputs (issue 22), posted as parallel lists like the payload and output name.
FLOW_POSTED = {"when": "step_when", "default": "step_default", "for_each": "step_for_each", "item_as": "step_as",
               "max_parallel": "step_max_parallel", "on_error": "step_on_error"}
ON_ERROR_CHOICES = OnError.choices


def _posted(data: QueryDict, name: str, index: int) -> str:
    values = data.getlist(name)
    return values[index] if index < len(values) else ""


def step_flow(data: QueryDict, index: int) -> tuple[dict[str, Any], list[str]]:
    """Row `index`'s control flow (empty: the default) and what is wrong with its values, naming the field."""
    flow: dict[str, Any] = {name: _posted(data, posted, index) for name, posted in FLOW_POSTED.items()}
    problems = []
    flow["for_each"] = flow["for_each"].strip()
    flow["item_as"] = flow["item_as"].strip() or "item"
    try:
        validate_variable_name(flow["item_as"])
    except ValidationError as exc:
        problems.append(f"Flow, as: {exc.messages[0]}")
    if len(flow["for_each"]) > 200:
        problems.append("Flow, for each: at most 200 characters.")
    flow["on_error"] = flow["on_error"] or OnError.FAIL
    if flow["on_error"] not in OnError.values:
        problems.append(f"Flow, on error: choose one of {', '.join(OnError.values)}.")
    text = flow["max_parallel"].strip()
    flow["max_parallel"] = int(text) if text.isdigit() else None
    if text and not (flow["max_parallel"] and 1 <= flow["max_parallel"] <= MAX_PARALLEL):
        problems.append(f"Flow, items at once: a whole number from 1 to {MAX_PARALLEL}, or empty for the workflow's.")
    return flow, problems


def step_rows(data: QueryDict) -> list[dict[str, Any]]:
    """Step rows as posted, each with its payload (or None), its control flow and its own problems,
    for redrawing the page."""
    payload_ids, output_keys = data.getlist("step_payload"), data.getlist("step_output")
    found = Payload.objects.in_bulk([int(i) for i in payload_ids if i.isdigit()])
    rows = []
    for index, (payload_id, output_key) in enumerate(zip(payload_ids, output_keys, strict=False)):
        payload = found.get(int(payload_id)) if payload_id.isdigit() else None
        problems = [] if payload else ["Choose a payload."]
        try:
            validate_variable_name(output_key.strip())
        except ValidationError as exc:
            problems.append(f"Output name: {exc.messages[0]}")
        flow, flow_problems = step_flow(data, index)
        rows.append({"payload": payload, "output_key": output_key.strip(), "problems": problems + flow_problems,
                     **flow})
    return rows


def step_specs(rows: list[dict[str, Any]]) -> list[StepSpec]:
    return [{"payload": row["payload"], "output_key": row["output_key"],  # type: ignore[typeddict-item]
             **{name: row[name] for name in FLOW_FIELDS}} for row in rows]
