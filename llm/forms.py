"""The LLM Tester's form: which endpoint and model, and what to send."""
from __future__ import annotations

import re
from typing import Any

from django import forms

from core.forms import RejectLoneSurrogatesMixin
from llm import services
from llm.models import HEADER_NAME, Endpoint


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

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
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
