"""Forms of the Block Manager. They check the shape of the input; blocks.services checks the rest."""
from __future__ import annotations

from django import forms

from core.forms import RejectLoneSurrogatesMixin, ServiceErrorsMixin


class BlockForm(RejectLoneSurrogatesMixin, ServiceErrorsMixin, forms.Form):
    label_suffix = ""

    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    content = forms.CharField(
        strip=False, label="Template",
        help_text="Jinja: {{ variable }} is filled in when the block is rendered.",
        widget=forms.Textarea(attrs={"rows": 14, "class": "code-editor", "spellcheck": "false",
                                     "autocomplete": "off", "autocapitalize": "off"}),
    )


class BlockSearchForm(forms.Form):
    q = forms.CharField(required=False, label="Search", widget=forms.TextInput(
        attrs={"type": "search", "placeholder": "name, text or variable"}))
