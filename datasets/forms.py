"""The Datasets pages' forms; what a case is and what makes a version is datasets.services'."""
from __future__ import annotations

from typing import Any

from django import forms

from core.forms import RejectLoneSurrogatesMixin
from datasets.importing import FORMATS
from datasets.models import Dataset


class DatasetForm(RejectLoneSurrogatesMixin, forms.ModelForm):
    class Meta:
        model = Dataset
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}


class UploadForm(forms.Form):
    file = forms.FileField(allow_empty_file=True, help_text="CSV with a header row, or JSONL (one JSON object a line), UTF-8.")
    format = forms.ChoiceField(choices=[("", "from the file's name"), *((name, name) for name in FORMATS)],
                               required=False)
    expected_column = forms.CharField(required=False, max_length=200,
                                      help_text="The column holding the expected output; “expected” by default.")
    message = forms.CharField(required=False, max_length=500)

    def file_format(self) -> str:
        chosen = self.cleaned_data["format"]
        name = self.cleaned_data["file"].name or ""
        return chosen or (name.rsplit(".", 1)[-1].lower() if "." in name else "")


class JSONObjectField(forms.JSONField):
    """A JSON field whose empty value shows as an empty box, not as `null`."""

    def prepare_value(self, value: Any) -> Any:
        return "" if value is None else super().prepare_value(value)


class RowForm(RejectLoneSurrogatesMixin, forms.Form):
    inputs = JSONObjectField(help_text='A JSON object: {"question": "..."}',
                             widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}))
    expected = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                               help_text="The expected output; empty for none.")
    metadata = JSONObjectField(required=False, help_text="A JSON object; empty for none.",
                               widget=forms.Textarea(attrs={"rows": 2, "class": "mono"}))

    def case(self) -> dict[str, Any]:
        return {"inputs": self.cleaned_data["inputs"], "expected": self.cleaned_data["expected"] or None,
                "metadata": self.cleaned_data["metadata"] or {}}


class AddRunForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.order_by("name"), empty_label=None)
