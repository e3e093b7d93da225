"""Reads of endpoints and what their servers accept, for the client and the pages."""
from __future__ import annotations

import datetime
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from llm import capabilities
from llm.client import EndpointConfig
from llm.models import Capability, Endpoint


def effective_capabilities(row: Capability, *, now: datetime.datetime | None = None) -> capabilities.Capabilities:
    """A row as the client uses it: learned values older than LLM_CAPABILITY_RELEARN_SECONDS are
    tried afresh (the standard value again), so a server upgraded since is used at its best."""
    stored = row.as_capabilities()
    if row.learned_at is None:
        return stored
    age = ((now or timezone.now()) - row.learned_at).total_seconds()
    if age < settings.LLM_CAPABILITY_RELEARN_SECONDS:
        return stored
    kept = {name: getattr(stored, name) for name in row.overridden if name in capabilities.FIELDS}
    return capabilities.Capabilities(**kept)


def endpoint_capabilities(endpoint_id: int) -> dict[str, capabilities.Capabilities]:
    """Model name -> what the client sends it; models without a row speak the standard dialect."""
    now = timezone.now()
    return {row.model: effective_capabilities(row, now=now) for row in Capability.objects.filter(endpoint_id=endpoint_id)}


aendpoint_capabilities = sync_to_async(endpoint_capabilities)


def endpoint_config(endpoint: Endpoint) -> EndpointConfig:
    """What a call needs to know about `endpoint`, with what its servers accept."""
    return EndpointConfig.from_endpoint(endpoint, capabilities=endpoint_capabilities(endpoint.pk), loaded_at=time.time())


aendpoint_config = sync_to_async(endpoint_config)


def capability_rows(endpoint: Endpoint) -> list[Capability]:
    return list(Capability.objects.filter(endpoint=endpoint).order_by("model"))


def capability_table(endpoint: Endpoint) -> list[dict[str, Any]]:
    """Per model: each capability's value, label, and whether a person set it or the server taught it."""
    table = []
    for row in capability_rows(endpoint):
        fields = []
        for name in capabilities.FIELDS:
            field = Capability._meta.get_field(name)
            value = getattr(row, name)
            shown = capabilities.value_label(name, value)
            source = "set by a person" if name in row.overridden else (
                "learned" if name in row.evidence else "standard")
            fields.append({"name": name, "label": field.verbose_name.replace("_", " "), "value": value,
                           "shown": shown, "source": source,
                           "evidence": (row.evidence.get(name) or {}).get("said", "")})
        table.append({"row": row, "fields": fields})
    return table


def endpoint_needs_structured_output(endpoint_id: int) -> bool:
    """True when a payload on the endpoint asks for JSON valid against a schema."""
    return Endpoint.objects.filter(pk=endpoint_id, payloads__json_schema__isnull=False).exists()


def capability_row(endpoint: Endpoint, model: str) -> Capability | None:
    """The stored row of one model on the endpoint, or None when nothing was learned or set about it."""
    return Capability.objects.filter(endpoint=endpoint, model=model).first()
