"""Forms of the run pages: the inputs of a workflow, and the filters of the runs list."""
from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from core.converters import MAX_ID
from core.forms import RejectLoneSurrogatesMixin
from releases.models import Release
from runs import selectors
from runs.models import CACHE_MODE_CHOICES, Run, RunStatus
from runs.reprice import RepriceScope, reprice_scope
from runs.search import runs_search
from workflows.models import Workflow


class WorkflowInputsForm(RejectLoneSurrogatesMixin, forms.Form):
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


class RunStartForm(WorkflowInputsForm):
    """The inputs, an optional cost cap for this run (prefilled with the workflow's default) and its use of the cache.

    The cap's fields are named apart from the inputs (an input may be called "budget"); the
    service's errors on "budget" and "budget_currency" are shown next to them."""

    BUDGET_FIELDS = {"budget": "run_budget", "budget_currency": "run_budget_currency", "cache_mode": "run_cache_mode"}

    def __init__(self, workflow: Workflow, *args: Any, **kwargs: Any) -> None:
        super().__init__(workflow, *args, **kwargs)
        self.input_names = list(self.fields)
        self.fields["run_budget"] = forms.DecimalField(
            label="Budget", required=False, min_value=0, max_digits=14, decimal_places=6, initial=workflow.budget,
            help_text="The most this run may cost: it stops before a step whose worst case would pass it. Empty: no cap.",
            widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal", "placeholder": "No cap",
                                            "aria-describedby": "id_run_budget_help"}))
        self.fields["run_budget_currency"] = forms.CharField(
            label="Currency", max_length=3, required=False, initial=workflow.budget_currency or "USD",
            widget=forms.TextInput(attrs={"size": 4, "autocapitalize": "characters", "spellcheck": "false"}))
        self.fields["run_cache_mode"] = forms.ChoiceField(
            label="Response cache", required=False, choices=CACHE_MODE_CHOICES,
            help_text="Use the cache: identical requests get their stored answer instead of a call. "
                      "No cache: every step calls the LLM.")

    def clean_run_budget_currency(self) -> str:
        return (self.cleaned_data.get("run_budget_currency") or "").strip().upper()

    def inputs(self) -> dict[str, str]:
        return {name: self.cleaned_data.get(name) or "" for name in self.input_names}

    def options(self) -> dict[str, Any]:
        """run_start's keyword arguments for the cap and the cache: the cap's field starts with the
        workflow's default, so an empty one was emptied on purpose (no cap)."""
        return {"budget": self.cleaned_data.get("run_budget"),
                "budget_currency": self.cleaned_data.get("run_budget_currency") or None,
                "cache_mode": self.cleaned_data.get("run_cache_mode") or None}

    def add_service_errors(self, error: ValidationError) -> None:
        if hasattr(error, "error_dict"):
            error = ValidationError({self.BUDGET_FIELDS.get(field, field): problems
                                     for field, problems in error.message_dict.items()})
        super().add_service_errors(error)


# A version's runs are the runs of the releases that used it.
VERSION_FILTERS = {"block_version": "release__block_versions", "payload_version": "release__payload_versions",
                   "workflow_version": "release__workflow_version"}


class RunFilterForm(forms.Form):
    """Filters of the runs list; an invalid value is ignored rather than failing the page."""

    label_suffix = ""

    q = forms.CharField(required=False, label="Search", widget=forms.TextInput(
        attrs={"type": "search", "placeholder": "Words, or a run id",
               "title": "Words of the workflow, inputs, output or error of finished runs; or a run id"}))
    workflow = forms.ModelChoiceField(queryset=Workflow.objects.order_by("name"), required=False,
                                      empty_label="All workflows")
    status = forms.ChoiceField(choices=[("", "All statuses"), *RunStatus.choices], required=False)
    # Set by the Releases page's links (?release=<id>); shown as a removable chip, not a select.
    release = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID, widget=forms.HiddenInput)
    # Set by the History pages' "Runs that used vN" links (a version's id), shown as a chip too.
    block_version = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID, widget=forms.HiddenInput)
    payload_version = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID, widget=forms.HiddenInput)
    workflow_version = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID, widget=forms.HiddenInput)

    def runs(self) -> QuerySet[Run]:
        runs = selectors.run_list().select_related("created_by")
        if not self.is_valid():
            return runs
        data = self.cleaned_data
        if data["workflow"]:
            runs = runs.filter(workflow=data["workflow"])
        if data["status"]:
            runs = runs.filter(status=data["status"])
        if data["release"]:
            runs = runs.filter(release_id=data["release"])
        for name, lookup in VERSION_FILTERS.items():
            if data[name]:
                runs = runs.filter(**{lookup: data[name]})
        if data["q"].strip():
            runs = runs_search(runs, data["q"])
        return runs

    @property
    def is_filtered(self) -> bool:
        return self.is_valid() and any(self.cleaned_data.values())

    @property
    def version_shown(self) -> str:
        """The version the list is filtered by, named ("block “tone” v3"), or ""."""
        if not self.is_valid():
            return ""
        return selectors.version_name(**{name: self.cleaned_data[name] for name in VERSION_FILTERS})

    @property
    def release_shown(self) -> Release | None:
        """The release the list is filtered by, to name it above the table."""
        if not self.is_valid() or not self.cleaned_data["release"]:
            return None
        return Release.objects.filter(pk=self.cleaned_data["release"]).first()


class RunCompareForm(forms.Form):
    """Which two runs to compare: ?a=&b= from a link, or two ticked rows (?run=&run=) of the runs list."""

    a = forms.IntegerField(label="First run", min_value=1, max_value=MAX_ID,
                           widget=forms.NumberInput(attrs={"placeholder": "Run id"}))
    b = forms.IntegerField(label="Second run", min_value=1, max_value=MAX_ID,
                           widget=forms.NumberInput(attrs={"placeholder": "Run id"}))

    def __init__(self, query: Any, *args: Any, **kwargs: Any) -> None:
        self.ticked = query.getlist("run") if query is not None and hasattr(query, "getlist") else []
        if self.ticked and not ({"a", "b"} & set(query)):
            # The list shows the newest first; the older run goes on the left, as "before".
            ticked = sorted(self.ticked, key=lambda value: (not value.isdigit(), len(value), value))
            query = {"a": ticked[0], "b": ticked[1] if len(ticked) > 1 else ""}
        super().__init__(query or None, *args, **kwargs)
        self.runs: dict[str, Run] = {}

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if len(self.ticked) > 2:
            raise ValidationError(f"Tick exactly two runs to compare; {len(self.ticked)} were ticked.")
        for name in ("a", "b"):
            if data.get(name) is None:
                continue
            try:
                self.runs[name] = selectors.run_detail(data[name])
            except Run.DoesNotExist:
                self.add_error(name, f"There is no run #{data[name]}.")
        if data.get("a") is not None and data.get("a") == data.get("b"):
            self.add_error("b", "Choose a different run than the first one.")
        return data


class RunReplayForm(WorkflowInputsForm):
    """Replay a run from one of its steps: the inputs (the source run's, editable) and the step."""

    def __init__(self, source: Run, *args: Any, **kwargs: Any) -> None:
        assert source.workflow is not None  # the view refuses a replay of a deleted workflow first
        super().__init__(source.workflow, *args, **kwargs)
        steps = (source.snapshot or {}).get("steps", [])
        self.fields["from_step"] = forms.TypedChoiceField(
            label="Replay from step", coerce=int,
            choices=[(step["index"], f"Step {step['index'] + 1} · {step['output_key']}") for step in steps],
            help_text="Earlier steps are copied from the source run; this step and the later ones run again.",
            widget=forms.Select(attrs={"aria-describedby": "id_from_step_help"}),
        )
        # The step first: it decides what the inputs are for.
        self.order_fields(["from_step"])
        for name, value in (source.inputs or {}).items():
            if name in self.fields:
                self.fields[name].initial = value

    def inputs(self) -> dict[str, str]:
        return {name: self.cleaned_data.get(name) or "" for name in self.fields if name != "from_step"}


class RepriceForm(RejectLoneSurrogatesMixin, forms.Form):
    """Which past steps to price again (runs.reprice); empty fields select everything."""

    since = forms.DateTimeField(required=False, help_text="Steps created at or after this (2026-11-30 or 2026-11-30 12:00).")
    until = forms.DateTimeField(required=False, help_text="Steps created before this.")
    model = forms.CharField(required=False, max_length=200,
                            help_text="A regular expression the whole model name matches, e.g. gpt-4o.*; empty: every model.")
    workflow = forms.CharField(required=False, max_length=100, help_text="Only runs of the workflow of this name.")

    checked: RepriceScope | None = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        try:  # the service's own checks (a regular expression, the order of the dates), next to their fields
            self.checked = reprice_scope(since=cleaned.get("since"), until=cleaned.get("until"),
                                         model=cleaned.get("model", ""), workflow=cleaned.get("workflow", ""))
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                for message in messages:
                    self.add_error(name if name in self.fields else None, message)
        return cleaned

    def scope(self) -> RepriceScope | None:
        """The checked selection, or None with the problems on their fields."""
        return self.checked if self.is_valid() else None
