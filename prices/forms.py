"""The Prices page's forms: an entry of the book, and the "which price wins" question."""
from __future__ import annotations

from typing import Any

from django import forms
from django.forms.models import fields_for_model, model_to_dict
from django.utils import timezone

from core.forms import RejectLoneSurrogatesMixin, ServiceErrorsMixin
from llm.models import Endpoint
from prices.models import PRICE_FIELDS, Price

MOMENT_FORMAT = "%Y-%m-%dT%H:%M"


def _moment_field(**kwargs: Any) -> forms.DateTimeField:
    return forms.DateTimeField(input_formats=[MOMENT_FORMAT, "%Y-%m-%d %H:%M", "%Y-%m-%d"],
                               widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=MOMENT_FORMAT),
                               **kwargs)


FIELDS = ["model", "match", "endpoint", "effective_from", *PRICE_FIELDS, "currency", "note"]


class PriceForm(RejectLoneSurrogatesMixin, ServiceErrorsMixin, forms.Form):
    """An entry's fields, saved through prices.services.price_save: ties and bad patterns come back next to
    "model". (Not a ModelForm: its constraint check would tell a tie nameless, before the service names it.)"""

    label_suffix = ""

    def __init__(self, *args: Any, instance: Price | None = None, **kwargs: Any) -> None:
        self.instance = instance
        if instance is not None:
            kwargs["initial"] = {**model_to_dict(instance, fields=FIELDS), **kwargs.get("initial", {})}
        super().__init__(*args, **kwargs)
        self.fields["endpoint"].empty_label = "Every endpoint"
        for name in PRICE_FIELDS:
            self.fields[name].widget.attrs.update({"step": "any", "min": "0", "inputmode": "decimal"})
        if instance is None and not self.is_bound:
            self.initial.setdefault("effective_from", timezone.localtime().replace(hour=0, minute=0, second=0,
                                                                                    microsecond=0))

    def price_fields(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in FIELDS}


PriceForm.base_fields = {
    **fields_for_model(
        Price, fields=FIELDS,
        labels={"input_per_million": "Input", "output_per_million": "Output",
                "cached_input_per_million": "Cached input", "reasoning_per_million": "Reasoning"},
        # Under the legend "Per million tokens": short, so the four boxes line up.
        help_texts={"input_per_million": "Prompt tokens.", "output_per_million": "Completion tokens.",
                    "cached_input_per_million": "Empty: the input price.",
                    "reasoning_per_million": "Empty: the output price.", "currency": "ISO 4217, e.g. USD."},
        widgets={"model": forms.TextInput(attrs={"class": "mono", "autocomplete": "off", "spellcheck": "false"}),
                 "currency": forms.TextInput(attrs={"size": 3, "class": "mono", "autocapitalize": "characters"})}),
    "effective_from": _moment_field(label="Effective from", help_text=Price._meta.get_field("effective_from").help_text),
}
PriceForm.base_fields = {name: PriceForm.base_fields[name] for name in FIELDS}
PriceForm.base_fields["endpoint"].queryset = Endpoint.objects.order_by("name")  # type: ignore[attr-defined]


class ResolveForm(RejectLoneSurrogatesMixin, forms.Form):
    """Endpoint + model (+ moment): which entry of the book a step would pay, as the engine decides."""

    label_suffix = ""

    endpoint = forms.ModelChoiceField(queryset=Endpoint.objects.order_by("name"), required=False,
                                      empty_label="No endpoint (global entries only)")
    model = forms.CharField(max_length=200, widget=forms.TextInput(attrs={
        "class": "mono", "autocomplete": "off", "spellcheck": "false", "placeholder": "e.g. gpt-4o-mini"}))
    at = _moment_field(required=False, label="At (empty: now)")
