"""The LLM Tester's form: which endpoint and model, and what to send."""
from __future__ import annotations

import re
from typing import Any

from django import forms

from core.forms import RejectLoneSurrogatesMixin
from llm import capabilities, services
from llm.models import HEADER_NAME, Capability, Endpoint


class TesterForm(RejectLoneSurrogatesMixin, forms.Form):
    label_suffix = ""

    endpoint = forms.ModelChoiceField(queryset=Endpoint.objects.filter(enabled=True).order_by("name"),
                                      empty_label=None)
    model = forms.CharField(max_length=200, help_text="From the endpoint's model list, or type a name.",
                            widget=forms.TextInput(attrs={"list": "model-options", "autocomplete": "off"}))
    system = forms.CharField(required=False, label="System prompt", max_length=20000,
                             widget=forms.Textarea(attrs={"rows": 2}))
    prompt = forms.CharField(max_length=50000, widget=forms.Textarea(attrs={"rows": 5}))
    temperature = forms.FloatField(required=False, min_value=0, max_value=2,
                                   widget=forms.NumberInput(attrs={"step": "0.1"}))
    max_tokens = forms.IntegerField(required=False, min_value=1, max_value=128000, label="Max tokens")

    def messages(self) -> list[dict[str, str]]:
        data = self.cleaned_data
        system = [{"role": "system", "content": data["system"]}] if data["system"] else []
        return [*system, {"role": "user", "content": data["prompt"]}]

    def params(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {name: data[name] for name in ("temperature", "max_tokens") if data[name] is not None}


class ConnectivityForm(forms.Form):
    """Only the endpoint and model of the tester form are needed to run the connectivity test."""

    endpoint = forms.ModelChoiceField(queryset=Endpoint.objects.filter(enabled=True))
    model = forms.CharField(max_length=200, required=False)


# What is shown of a line typed into the headers field: the name, up to a colon or a space.
HEADER_NAME_PART = re.compile(r"[:\s]")


class HeadersField(forms.CharField):
    """Extra headers as "Name: value" lines. Values are never rendered: a stored header shows as "Name:",
    and a blank value keeps its stored value."""

    widget = forms.Textarea(attrs={"rows": 3, "class": "mono", "autocomplete": "off", "spellcheck": "false"})

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, dict):
            return "\n".join(f"{name}:" for name in value)
        # A form shown again after an error: the names only, never a value typed into it.
        lines = str(value or "").splitlines()
        return "\n".join(HEADER_NAME_PART.split(line.strip())[0] + ":" for line in lines if line.strip())

    def to_python(self, value: Any) -> dict[str, str | None]:
        headers: dict[str, str | None] = {}
        for number, line in enumerate(str(value or "").splitlines(), 1):
            if not line.strip():
                continue
            name, colon, header_value = line.partition(":")
            if not colon or not name.strip():
                raise forms.ValidationError(f"Line {number}: write each header as “Name: value”.")
            if not HEADER_NAME.match(name.strip()):
                raise forms.ValidationError(f"Line {number}: {name.strip()!r} is not a header name (letters, digits, "
                                            "- _ . and no spaces).")
            headers[name.strip()] = header_value.strip() or None
        return headers


PRICING_FIELDS_KEPT = ("pricing", "price_currency")


class EndpointForm(RejectLoneSurrogatesMixin, forms.ModelForm):
    """An endpoint's settings for the Endpoints page and the admin. The key and header values are write-only."""

    label_suffix = ""

    base_url = forms.URLField(max_length=500, assume_scheme="https", label="Base URL",
                              help_text=Endpoint._meta.get_field("base_url").help_text)
    # Write-only: the stored key is never rendered back, not even masked.
    api_key = forms.CharField(
        required=False, strip=True, label="Replace API key", max_length=1000,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave blank to keep the stored key. Changing the URL's host, scheme or port "
                  "clears the key unless you type it here again.",
    )
    clear_api_key = forms.BooleanField(required=False, label="Clear the stored API key")
    headers = HeadersField(
        required=False, label="Extra headers",
        help_text="One “Name: value” per line, e.g. “api-key: …” for Azure. Values are write-only: a stored "
                  "header shows as “Name:”, and leaving its value blank keeps it. Remove a line to remove the header.",
    )

    class Meta:
        model = Endpoint
        fields = [name for name in services.EDITABLE_FIELDS if name != "extra_headers"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["headers"].initial = self.instance.extra_headers if self.instance.pk else {}
        # A form sent without the pricing fields (an older client, a script) keeps the stored pricing.
        for name in PRICING_FIELDS_KEPT:
            self.fields[name].required = False

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name in PRICING_FIELDS_KEPT:
            if not cleaned.get(name) and name not in self.errors:
                cleaned[name] = getattr(self.instance, name)
        if cleaned.get("clear_api_key") and cleaned.get("api_key"):
            self.add_error("clear_api_key", "Either type a new key or clear the stored one, not both.")
        return cleaned

    def api_key_change(self) -> str | None:
        """None keeps the stored key, "" clears it, anything else replaces it."""
        if self.cleaned_data.get("clear_api_key"):
            return ""
        return self.cleaned_data.get("api_key") or None

    def endpoint_fields(self) -> dict[str, Any]:
        """The fields for llm.services.endpoint_create/endpoint_update."""
        fields = {name: self.cleaned_data[name] for name in services.EDITABLE_FIELDS if name in self.cleaned_data}
        return {**fields, "extra_headers": self.cleaned_data.get("headers") or {}}


# The "learn" choice hands a field back to learning; "none" stands for the empty reasoning field,
# which a select would otherwise send as "no value".
LEARN = "learn"
NONE_CHOICE = "none"


def _capability_choices(name: str) -> list[tuple[str, str]]:
    allowed = capabilities.FIELDS[name]
    if allowed is bool:
        return [(LEARN, "learn"), ("true", "yes"), ("false", "no")]
    labels = dict(Capability._meta.get_field(name).choices or [])
    return [(LEARN, "learn"), *[(value or NONE_CHOICE, str(labels.get(value, value))) for value in allowed]]


def _choice_value(name: str, choice: str) -> Any:
    if capabilities.FIELDS[name] is bool:
        return choice == "true"
    return "" if choice == NONE_CHOICE else choice


def _choice_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value or NONE_CHOICE


class CapabilityForm(RejectLoneSurrogatesMixin, forms.Form):
    """One model's capabilities on the Endpoints page: each field set to a value, or "learn"."""

    label_suffix = ""

    model = forms.CharField(max_length=200, help_text="As sent to the server, e.g. meta-llama/Llama-3.1-8B:q4.",
                            widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))

    def __init__(self, *args: Any, row: Capability | None = None, new: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.row, self.new = row, new
        for name in capabilities.FIELDS:
            label = Capability._meta.get_field(name).verbose_name.replace("_", " ")
            self.fields[name] = forms.ChoiceField(choices=_capability_choices(name), label=label.capitalize(),
                                                  required=False)
            overridden = row is not None and name in row.overridden
            self.fields[name].initial = _choice_of(getattr(row, name)) if overridden else LEARN
        if row is not None and not new:
            self.fields["model"].initial = row.model
            self.fields["model"].widget = forms.HiddenInput()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.new and self.is_valid_so_far() and not self.values():
            raise forms.ValidationError("Choose a value for at least one capability (or leave the model to learning).")
        return cleaned

    def is_valid_so_far(self) -> bool:
        return not self._errors and all(name in self.cleaned_data for name in capabilities.FIELDS)

    def values(self) -> dict[str, Any]:
        """What to hand llm.services.capability_set: fields set to a value, and None for a person's setting
        turned back to "learn". A field left on "learn" that was learned keeps what was learned."""
        overridden = set(self.row.overridden) if self.row is not None else set()
        values: dict[str, Any] = {}
        for name in capabilities.FIELDS:
            choice = self.cleaned_data[name] or LEARN
            if choice == LEARN:
                if name in overridden:
                    values[name] = None
                continue
            value = _choice_value(name, choice)
            if name not in overridden or getattr(self.row, name) != value:
                values[name] = value
        return values
