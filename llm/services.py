"""Every write to LLM endpoints. The API key is set through here so it is encrypted, never echoed.

Secrets belong to the server they were given for: moving an endpoint to another scheme, host or
port clears its API key and extra header values, unless the same change supplies them again.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from llm import capabilities
from llm.egress import DEFAULT_PORTS
from llm.models import Capability, Endpoint

# Fields a caller may set directly; the API key goes through set_api_key().
EDITABLE_FIELDS = (
    "name", "base_url", "default_model", "timeout_seconds", "max_retries", "max_concurrency",
    "requests_per_minute", "tokens_per_minute", "extra_headers", "enabled", "is_mock", "pricing", "price_per_second", "price_currency",
)
# Extra headers as given by a caller: a value of None keeps the stored value of that header.
HeaderChanges = dict[str, str | None]


def endpoint_origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL: where its secrets are sent."""
    parts = urlsplit(url)
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower().rstrip("."), port


def endpoint_moves(*, endpoint: Endpoint, base_url: str | None) -> bool:
    """True when saving `base_url` would send the endpoint's secrets to another server."""
    if endpoint.pk is None or base_url is None:
        return False
    # The stored URL, not the instance's: a model form has already put the new URL on the instance.
    stored = Endpoint.objects.filter(pk=endpoint.pk).values_list("base_url", flat=True).first()
    return stored is not None and endpoint_origin(base_url) != endpoint_origin(stored)


def _headers(stored: dict[str, str], changes: HeaderChanges, *, moves: bool = False) -> dict[str, str]:
    kept = {name.lower(): value for name, value in stored.items()}
    headers: dict[str, str] = {}
    for name, value in changes.items():
        if value is None:
            if moves:
                continue  # its value belonged to the old server: cleared, like the key
            if name.lower() not in kept:
                raise ValidationError({"extra_headers": f"Header {name!r} has no stored value: give its value."})
            value = kept[name.lower()]
        headers[name] = value
    return headers


def _check_fields(fields: dict[str, Any], caller: str) -> None:
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"{caller}() got unknown fields: {', '.join(sorted(unknown))}")


@transaction.atomic
def endpoint_create(*, api_key: str = "", **fields: Any) -> Endpoint:
    _check_fields(fields, "endpoint_create")
    fields["extra_headers"] = _headers({}, fields.get("extra_headers") or {})
    endpoint = Endpoint(**fields)
    endpoint.set_api_key(api_key)
    endpoint.full_clean()
    endpoint.save()
    return endpoint


@transaction.atomic
def endpoint_update(*, endpoint: Endpoint, api_key: str | None = None, **fields: Any) -> Endpoint:
    """Change the given fields. `api_key=None` keeps the stored key, `""` clears it.

    `extra_headers` replaces the headers; a value of None keeps that header's stored value.
    """
    _check_fields(fields, "endpoint_update")
    moves = endpoint_moves(endpoint=endpoint, base_url=fields.get("base_url"))
    if "extra_headers" in fields:
        endpoint.extra_headers = _headers(dict(endpoint.extra_headers or {}), fields.pop("extra_headers") or {},
                                          moves=moves)
    elif moves:
        endpoint.extra_headers = {}
    for name, value in fields.items():
        setattr(endpoint, name, value)
    if api_key is not None:
        endpoint.set_api_key(api_key)
    elif moves:
        endpoint.set_api_key("")
    endpoint.full_clean()
    endpoint.save()
    return endpoint


@transaction.atomic
def endpoint_delete(*, endpoint: Endpoint) -> None:
    # Payloads PROTECT their endpoint: a ProtectedError here becomes a 409 in the API.
    endpoint.delete()


# --- what servers accept (llm.Capability) -------------------------------------------------------
def _capability_row(endpoint_id: int, model: str) -> Capability:
    try:
        with transaction.atomic():
            return Capability.objects.get_or_create(endpoint_id=endpoint_id, model=model)[0]
    except IntegrityError:  # another worker created it between our read and our insert
        return Capability.objects.get(endpoint_id=endpoint_id, model=model)


@transaction.atomic
def capability_learn(*, endpoint_id: int, model: str, changes: dict[str, Any], evidence: dict[str, str]) -> None:
    """Store what a call found out about the server; fields a person set are left alone.

    Called by llm.client after an adapted request succeeded, so a value is only stored once the
    server has accepted the request made with it.
    """
    if not Endpoint.objects.filter(pk=endpoint_id).exists():
        return  # deleted meanwhile, or a probe of an unsaved endpoint
    row = _capability_row(endpoint_id, model)
    now = timezone.now()
    for name, value in changes.items():
        if name in row.overridden or capabilities.field_problem(name, value):
            continue
        setattr(row, name, value)
        row.evidence[name] = {"said": evidence.get(name, "")[:500], "at": now.isoformat()}
    row.learned_at = now
    row.save()


acapability_learn = sync_to_async(capability_learn)


@transaction.atomic
def capability_set(*, endpoint: Endpoint, model: str, values: dict[str, Any]) -> Capability:
    """A person's word on what the server accepts. A value of None hands the field back to learning."""
    problems = {name: problem for name, value in values.items()
                if value is not None and (problem := capabilities.field_problem(name, value))}
    if not model or len(model) > 200:
        problems["model"] = "give the model name (at most 200 characters)"
    if problems:
        raise ValidationError(problems)
    row = _capability_row(endpoint.pk, model)
    overridden = set(row.overridden)
    standard = capabilities.STANDARD
    for name, value in values.items():
        if value is None:
            overridden.discard(name)
            setattr(row, name, getattr(standard, name))
            row.evidence.pop(name, None)
        else:
            overridden.add(name)
            setattr(row, name, value)
    row.overridden = sorted(overridden)
    row.save()
    return row


@transaction.atomic
def capability_reset(*, endpoint: Endpoint, model: str | None = None) -> int:
    """Forget what was learned and set about the endpoint (or one model): the next call learns again."""
    rows = Capability.objects.filter(endpoint=endpoint)
    if model is not None:
        rows = rows.filter(model=model)
    return rows.delete()[0]


@transaction.atomic
def capability_forget_learned(*, endpoint_id: int, model: str) -> None:
    """Before the connectivity test re-learns: learned values go back to the standard, a person's stay."""
    row = Capability.objects.filter(endpoint_id=endpoint_id, model=model).first()
    if row is None:
        return
    standard = capabilities.STANDARD
    # Where reasoning comes is seen in real answers, not in the test's one-token probes: kept.
    for name in capabilities.FIELDS:
        if name not in row.overridden and name != "reasoning_field":
            setattr(row, name, getattr(standard, name))
            row.evidence.pop(name, None)
    row.learned_at = None
    row.save()


acapability_forget_learned = sync_to_async(capability_forget_learned)
