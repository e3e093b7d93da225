"""Forms of the Releases page: cut a release, create, move, roll back and delete a label.

Each form is bound to one workflow, so a release of another workflow is not a choice; the services
(releases.services) check again, and their ValidationError is shown on the field it names."""
from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from core.converters import MAX_ID
from core.forms import RejectLoneSurrogatesMixin
from releases.models import Release, validate_label_name
from workflows.models import Workflow

MESSAGE_MAX = 500
REASON_MAX = 1000


class ReleaseChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Release) -> str:
        message = f" · {obj.message[:60]}" if obj.message else ""
        return f"r{obj.number}{message}"


class ServiceErrorsForm(RejectLoneSurrogatesMixin, forms.Form):
    label_suffix = ""

    def add_service_errors(self, error: ValidationError) -> None:
        """A service's ValidationError ({"name": [...], "release": [...]}) next to the field it names."""
        problems = error.message_dict if hasattr(error, "error_dict") else {None: error.messages}
        for field, messages in problems.items():
            for message in messages:
                self.add_error(field if field in self.fields else None, message)


class ReleaseCutForm(ServiceErrorsForm):
    message = forms.CharField(required=False, max_length=MESSAGE_MAX, label="Message",
                              widget=forms.TextInput(attrs={"placeholder": "Why this release (optional)"}))


def _reason_field(placeholder: str) -> forms.CharField:
    return forms.CharField(required=False, max_length=REASON_MAX, label="Reason",
                           widget=forms.TextInput(attrs={"placeholder": placeholder}))


class LabelMoveForm(ServiceErrorsForm):
    """Point an existing label at another release of the workflow."""

    release = ReleaseChoiceField(queryset=Release.objects.none(), label="Release", empty_label=None)
    reason = _reason_field("Why (kept in the history)")

    def __init__(self, workflow: Workflow, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["release"].queryset = Release.objects.filter(workflow=workflow).order_by("-number")  # type: ignore[attr-defined]


class LabelCreateForm(LabelMoveForm):
    # No maxlength on the input: a pasted name that is too long is shown with its error, not cut silently.
    name = forms.CharField(label="Name", validators=[validate_label_name],
                           widget=forms.TextInput(attrs={"placeholder": "production", "autocomplete": "off",
                                                         "spellcheck": "false"}))

    field_order = ["name", "release", "reason"]


class LabelReasonForm(ServiceErrorsForm):
    """Roll back or delete a label: only a reason."""

    reason = _reason_field("Why (optional)")


class AgainstForm(forms.Form):
    """What a diff compares with: "current" (the live tree) or a number (a release's, or a run's id)."""

    against = forms.CharField(max_length=24, label="Compare with")

    def __init__(self, *args: Any, noun: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.noun = noun

    def clean_against(self) -> str | int:
        value = self.cleaned_data["against"].strip().lower()
        if value == "current":
            return value
        if value.isdigit() and 0 < int(value) <= MAX_ID:
            return int(value)
        raise ValidationError(f"“{value}” is neither “current” nor a {self.noun}.")
