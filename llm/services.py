"""Every write to LLM endpoints. The API key is set through here so it is encrypted, never echoed."""
from __future__ import annotations

from typing import Any

from django.db import transaction

from llm.models import Endpoint

# Fields a caller may set directly; the API key goes through set_api_key().
EDITABLE_FIELDS = (
    "name", "base_url", "default_model", "timeout_seconds", "max_retries", "max_concurrency",
    "extra_headers", "enabled", "is_mock",
)


@transaction.atomic
def endpoint_create(*, api_key: str = "", **fields: Any) -> Endpoint:
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"endpoint_create() got unknown fields: {', '.join(sorted(unknown))}")
    endpoint = Endpoint(**fields)
    endpoint.set_api_key(api_key)
    endpoint.full_clean()
    endpoint.save()
    return endpoint


@transaction.atomic
def endpoint_update(*, endpoint: Endpoint, api_key: str | None = None, **fields: Any) -> Endpoint:
    """Change the given fields. `api_key=None` keeps the stored key; `""` clears it."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"endpoint_update() got unknown fields: {', '.join(sorted(unknown))}")
    for name, value in fields.items():
        setattr(endpoint, name, value)
    if api_key is not None:
        endpoint.set_api_key(api_key)
    endpoint.full_clean()
    endpoint.save()
    return endpoint


@transaction.atomic
def endpoint_delete(*, endpoint: Endpoint) -> None:
    # Payloads PROTECT their endpoint: a ProtectedError here becomes a 409 in the API.
    endpoint.delete()
