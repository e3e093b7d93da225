"""The LLM Tester's form: which endpoint and model, and what to send."""
from __future__ import annotations

from typing import Any

from django import forms

from llm.models import Endpoint
from orchestrator.forms import RejectLoneSurrogatesMixin


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
