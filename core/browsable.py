"""The browsable API (/api/) with forms that can create what they show.

DRF's HTML form cannot post a nested list or a JSON object (payload blocks, workflow steps and
inputs, run inputs): for such a serializer only the raw JSON form is shown. Its first content is
the view's `browsable_example()` when it has one, so a new resource starts from a working body.
"""
from __future__ import annotations

import json
from typing import Any

from django import forms
from rest_framework import renderers, serializers

# Fields DRF's HTML form renders as "not supported" or as a single text box that is never parsed.
NOT_FORM_POSTABLE = (serializers.BaseSerializer, serializers.ListField, serializers.DictField,
                     serializers.JSONField, serializers.HStoreField)


def form_postable(serializer: serializers.BaseSerializer) -> bool:
    """Whether every writable field of the serializer can be posted from an HTML form."""
    fields = getattr(serializer, "fields", {})
    return not any(isinstance(field, NOT_FORM_POSTABLE) for field in fields.values() if not field.read_only)


class BrowsableAPIRenderer(renderers.BrowsableAPIRenderer):
    def render_form_for_serializer(self, serializer: serializers.BaseSerializer) -> Any:
        if not form_postable(serializer):
            return None  # the page then shows the raw JSON form alone
        return super().render_form_for_serializer(serializer)

    def get_raw_data_form(self, data: Any, view: Any, method: str, request: Any) -> forms.Form | None:
        form = super().get_raw_data_form(data, view, method, request)
        example = getattr(view, "browsable_example", None)
        if form is not None and method == "POST" and example is not None:
            form.fields["_content"].initial = json.dumps(example(), indent=4)
        return form
