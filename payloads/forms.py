"""The Payload Builder's form: settings from the model's fields, the ordered blocks, and sample values.

The blocks arrive as two parallel lists in page order (`block` ids and `role`s): dragging rows in the
page is all it takes to reorder them.
"""
from __future__ import annotations

from typing import Any

from django import forms
from django.http import QueryDict

from blocks.models import Block
from core.forms import RejectLoneSurrogatesMixin, ServiceErrorsMixin
from llm.models import Endpoint
from payloads.models import Payload, Role
from payloads.services import BlockUse

SETTING_FIELDS = ["name", "description", "endpoint", "model", "temperature", "top_p", "max_tokens", "stop", "seed",
                  "presence_penalty", "frequency_penalty", "stream", "json_schema", "structured_retries", "pass_reasoning",
                  "extra_params", "cache_ttl_seconds"]
SAMPLE_PREFIX = "sample-"


class OptionalJSONField(forms.JSONField):
    """A nullable JSON field shown empty when unset (not `null`); an empty field saves as unset."""

    def prepare_value(self, value: Any) -> Any:
        return "" if value is None else super().prepare_value(value)


# The model's nullable JSON fields; the admin's form and the builder's use the same field class.
OPTIONAL_JSON_FIELDS = {"stop": OptionalJSONField, "json_schema": OptionalJSONField}


class PayloadForm(RejectLoneSurrogatesMixin, ServiceErrorsMixin, forms.Form):
    label_suffix = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields.update(forms.fields_for_model(Payload, fields=SETTING_FIELDS, field_classes=OPTIONAL_JSON_FIELDS))
        self.fields["endpoint"].queryset = Endpoint.objects.order_by("name")
        self.fields["endpoint"].empty_label = None
        self.fields["model"].widget.attrs.update({"list": "model-options", "autocomplete": "off"})
        self.fields["description"].widget.attrs["rows"] = 2
        for name in ("stop", "json_schema", "extra_params"):
            self.fields[name].widget.attrs.update({"rows": 2, "class": "code-editor", "spellcheck": "false"})
        self.fields["stop"].help_text = 'Up to 4 strings as JSON, e.g. ["\\n\\n"].'
        self.fields["extra_params"].help_text = 'More request parameters as JSON, e.g. {"logprobs": true}.'
        self.fields["pass_reasoning"].label = "Pass reasoning to later steps"
        self.fields["cache_ttl_seconds"].label = "Cache answers for (seconds)"
        for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
            self.fields[name].widget.attrs["step"] = "0.1"

    def settings(self) -> dict[str, Any]:
        """What payload_create/payload_update take besides the blocks."""
        data = dict(self.cleaned_data)
        if data.get("extra_params") is None:
            data["extra_params"] = {}
        return data


def block_uses(data: QueryDict) -> tuple[list[BlockUse], list[str]]:
    """The posted block rows in order, and a message for each row that is not valid."""
    ids, roles = data.getlist("block"), data.getlist("role")
    if len(ids) != len(roles):
        return [], ["Each block needs a role."]
    found = Block.objects.in_bulk([int(i) for i in ids if i.isdigit()])
    uses: list[BlockUse] = []
    problems: list[str] = []
    for position, (block_id, role) in enumerate(zip(ids, roles, strict=True), start=1):
        block = found.get(int(block_id)) if block_id.isdigit() else None
        if block is None:
            problems.append(f"Block {position}: no such block.")
        elif role not in Role.values:
            problems.append(f"Block {position}: '{role}' is not a role (system, user or assistant).")
        else:
            uses.append({"block": block, "role": role})
    return uses, problems


def sample_values(data: QueryDict) -> dict[str, str]:
    return {key[len(SAMPLE_PREFIX):]: value for key, value in data.items() if key.startswith(SAMPLE_PREFIX)}
