"""The "New experiment" form: its choices (variants, a dataset version, each input's source) depend on
the workflow and dataset picked; what makes an experiment valid is experiments.services'."""
from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from core.forms import RejectLoneSurrogatesMixin
from datasets.models import Dataset, DatasetVersion
from releases.models import Label, Release
from runs.models import CACHE_MODE_CHOICES
from workflows.models import Workflow

CURRENT = "current"
CONSTANT = "__value__"
DEFAULT = ""
RELEASE_CHOICES = 50
ASSERTIONS_EXAMPLE = '[{"type": "icontains", "value": "{{ expected }}"}, {"type": "latency", "threshold": 3000}]'
ASSERTIONS_HELP = ("Optional: a JSON list of checks on every cell that succeeds (promptfoo's types: equals, "
                   "contains, regex, is-json, llm-rubric, …; values may use {{ expected }} and the case's inputs). "
                   f"For example {ASSERTIONS_EXAMPLE}")


def _variant_choices(workflow: Workflow | None) -> list[tuple[str, str]]:
    if workflow is None:
        return []
    choices = [(CURRENT, "The workflow as it stands (cut as a release when it starts)")]
    for label in Label.objects.filter(workflow=workflow).select_related("release").order_by("name"):
        choices.append((f"label:{label.name}", f"Label “{label.name}” (now r{label.release.number})"))
    for release in Release.objects.filter(workflow=workflow).order_by("-number")[:RELEASE_CHOICES]:
        note = f" · {release.message[:60]}" if release.message else ""
        choices.append((f"release:{release.pk}", f"Release r{release.number}{note}"))
    return choices


def variant_spec(choice: str) -> dict[str, Any]:
    """A checked box as experiments.services.experiment_create takes a variant."""
    if choice == CURRENT:
        return {"current": True}
    kind, _, value = choice.partition(":")
    return {"label": value} if kind == "label" else {"release": value}


def workflow_inputs(workflow: Workflow | None) -> list[dict[str, Any]]:
    """The inputs a variant may take: the workflow's now, then any only its recent releases declare."""
    if workflow is None:
        return []
    found = {item["name"]: item for item in workflow.inputs or []}
    for snapshot in Release.objects.filter(workflow=workflow).order_by("-number").values_list("snapshot", flat=True)[
            :RELEASE_CHOICES]:
        for item in snapshot.get("inputs") or []:
            found.setdefault(item["name"], item)
    return list(found.values())


class AssertionsField(forms.CharField):
    """A JSON list of assertions as text; whether each one is valid is evaluations.checks' to say."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 4, "class": "mono", "spellcheck": "false",
                                                          "placeholder": ASSERTIONS_EXAMPLE}))
        super().__init__(required=False, strip=True, help_text=ASSERTIONS_HELP, max_length=100_000, **kwargs)

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if not text:
            return None
        try:
            parsed = json.loads(text)
        except ValueError as error:
            raise ValidationError(f"Not JSON: {error}.") from None
        if not isinstance(parsed, list):
            raise ValidationError(f"Give a JSON list of assertions, like {ASSERTIONS_EXAMPLE}.")
        return parsed

    def prepare_value(self, value: Any) -> Any:
        return json.dumps(value, indent=1, ensure_ascii=False) if isinstance(value, list) else value


class ReevaluateForm(forms.Form):
    assertions = AssertionsField(label="Assertions (empty: the same ones again)")


class ExperimentForm(RejectLoneSurrogatesMixin, forms.Form):
    name = forms.CharField(max_length=200)
    workflow = forms.ModelChoiceField(queryset=Workflow.objects.order_by("name"))
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.order_by("name"))
    version = forms.TypedChoiceField(coerce=int, choices=[], label="Dataset version")
    variants = forms.MultipleChoiceField(choices=[], widget=forms.CheckboxSelectMultiple,
                                         help_text="Each is one column of the results: pick one or more.")
    repeats = forms.IntegerField(initial=1, min_value=1, help_text="How many times each case runs per variant.")
    concurrency = forms.IntegerField(initial=10, min_value=1, help_text="At most this many cells run at once.")
    budget = forms.CharField(required=False, max_length=40,
                             help_text="Stop starting cells once they have cost this much; empty for no cap.")
    budget_currency = forms.CharField(required=False, max_length=3, label="Currency",
                                      help_text="Three letters; the workflow's when empty.")
    cache_mode = forms.ChoiceField(required=False, label="Response cache",
                                   choices=CACHE_MODE_CHOICES,
                                   help_text="Use the cache: a case asked again gets its stored answer instead of a "
                                             "call. No cache: every cell calls the LLM.")
    assertions = AssertionsField()

    def __init__(self, *args: Any, workflow: Workflow | None = None, dataset: Dataset | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.picked_workflow, self.picked_dataset = workflow, dataset
        self.fields["variants"].choices = _variant_choices(workflow)
        versions = list(dataset.versions.order_by("-number")) if dataset else []
        self.fields["version"].choices = [(v.number, f"v{v.number} · {v.row_count} rows") for v in versions]
        if versions:
            self.fields["version"].initial = versions[0].number
        asked = str(self.data.get("version") or self.initial.get("version") or "")
        version = next((v for v in versions if str(v.number) == asked), versions[0] if versions else None)
        self.columns = list(version.columns) if version else []
        self.mapped_inputs = workflow_inputs(workflow)
        for item in self.mapped_inputs:
            self._add_mapping_fields(item)

    def _add_mapping_fields(self, item: dict[str, Any]) -> None:
        name = item["name"]
        default = item.get("default")
        own = "its default" + (f" (“{str(default)[:40]}”)" if default not in (None, "") else "")
        choices = [*((column, f"column {column}") for column in self.columns), (CONSTANT, "a constant:"),
                   (DEFAULT, own if default is not None else "(no default: pick a column or a constant)")]
        self.fields[f"map_{name}"] = forms.ChoiceField(choices=choices, required=False, label=name,
                                                       initial=name if name in self.columns else DEFAULT,
                                                       help_text=item.get("description") or "")
        if self.initial.get(f"map_{name}") not in dict(choices):
            self.initial.pop(f"map_{name}", None)  # a column of the dataset picked before
        self.fields[f"value_{name}"] = forms.CharField(required=False, label=f"Constant for {name}",
                                                       widget=forms.TextInput(attrs={"class": "mapping-value",
                                                                                      "placeholder": "the constant"}))

    def mapping_rows(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        return [(self[f"map_{item['name']}"], self[f"value_{item['name']}"]) for item in self.mapped_inputs]

    def dataset_version(self) -> DatasetVersion | None:
        return DatasetVersion.objects.filter(dataset=self.cleaned_data["dataset"],
                                             number=self.cleaned_data["version"]).first()

    def mapping(self) -> dict[str, Any]:
        """Only what the person chose: an input left on "its default" is resolved by the service."""
        mapping: dict[str, Any] = {}
        for item in self.mapped_inputs:
            source = self.cleaned_data.get(f"map_{item['name']}") or DEFAULT
            if source == CONSTANT:
                mapping[item["name"]] = {"value": self.cleaned_data.get(f"value_{item['name']}", "")}
            elif source != DEFAULT:
                mapping[item["name"]] = {"column": source}
        return mapping

    def service_errors(self, error: ValidationError) -> None:
        """Put each of experiment_create's errors next to the field its key names."""
        for key, messages in (error.message_dict.items() if hasattr(error, "error_dict")
                              else [("__all__", error.messages)]):
            field, messages = self._field_of(key, messages)
            self.add_error(field if field in self.fields else None, messages)

    def _field_of(self, key: str, messages: list[str]) -> tuple[str, list[str]]:
        if key.startswith("variants"):
            index, _, _ = key.partition("]")
            chosen = self.cleaned_data.get("variants") or []
            position = int(index[len("variants["):]) if index.startswith("variants[") else -1
            label = dict(self.fields["variants"].choices).get(chosen[position]) if 0 <= position < len(chosen) else None
            return "variants", [f"{label}: {m}" for m in messages] if label else messages
        if key.startswith("assertions"):
            # "assertions[2].value": the field, with which assertion and key the message is about.
            return "assertions", [f"{key}: {m}" if key != "assertions" else m for m in messages]
        if key.startswith("mapping."):
            return f"map_{key[len('mapping.'):]}", messages
        return {"dataset_version": "version"}.get(key, key), messages
