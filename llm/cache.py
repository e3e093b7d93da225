"""The response cache: answers of identical requests kept in the database, shared by every worker.

Exact match only: the key is the sha256 of the canonical JSON of the request as the caller makes it
(the endpoint's id and address, the model, the rendered messages, every parameter including the seed,
the JSON schema), never of an API key, and not of streaming (a cached answer is replayed as a stream).
The endpoint's id is in the key, not only its address: an answer is given back only to steps on the
very endpoint that produced it, so whoever may run that endpoint's workflows sees nothing new.

These functions are synchronous (the ORM): the engine calls them through runs.engine.dbthread, never
inside a transaction that spans an LLM call. Storing is insert-or-ignore on the unique key, so two
identical calls racing on an empty cache both succeed and exactly one answer is kept.
"""
from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from llm.config import EndpointConfig
from llm.models import CachedResponse

# Bumped when what the key covers changes, so old entries are never read with a new meaning.
KEY_VERSION = 1



@dataclass(frozen=True)
class CachedAnswer:
    """A stored answer and what it first cost to get."""

    text: str
    reasoning: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int | None
    cached_tokens: int | None
    tokens_estimated: bool
    reported_cost: Decimal | None
    latency_ms: int
    created_at: datetime.datetime


def cache_key(config: EndpointConfig, *, model: str, messages: list[dict[str, Any]], params: dict[str, Any],
              json_schema: dict[str, Any] | None) -> str:
    """The sha256 (hex) of the canonical request: sorted keys, no spaces, the text as it is."""
    request = {"v": KEY_VERSION, "endpoint": config.id, "base_url": config.base_url.rstrip("/"), "model": model,
               "messages": messages, "params": params, "json_schema": json_schema}
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


_FIELDS = ("text", "reasoning", "finish_reason", "prompt_tokens", "completion_tokens", "reasoning_tokens",
           "cached_tokens", "tokens_estimated", "reported_cost", "latency_ms", "created_at")


def cache_lookup(*, key: str, now: datetime.datetime | None = None) -> CachedAnswer | None:
    """The answer stored under `key` that has not expired, or None."""
    row = (CachedResponse.objects.filter(key=key, expires_at__gt=now or timezone.now())
           .values_list(*_FIELDS).first())
    return None if row is None else CachedAnswer(*row)




def cache_store(*, key: str, endpoint_id: int, model: str, answer: CachedAnswer, ttl_seconds: int) -> bool:
    """Keep `answer` under `key` for `ttl_seconds`. False: an answer is stored there already (a racing
    identical call stored first); an expired one is replaced."""
    now = answer.created_at
    row = CachedResponse(key=key, endpoint_id=endpoint_id, model=model, text=answer.text, reasoning=answer.reasoning,
                         finish_reason=answer.finish_reason, prompt_tokens=answer.prompt_tokens,
                         completion_tokens=answer.completion_tokens, reasoning_tokens=answer.reasoning_tokens,
                         cached_tokens=answer.cached_tokens, tokens_estimated=answer.tokens_estimated,
                         reported_cost=answer.reported_cost, latency_ms=answer.latency_ms, created_at=now,
                         expires_at=now + datetime.timedelta(seconds=ttl_seconds))
    try:
        with transaction.atomic():
            CachedResponse.objects.filter(key=key, expires_at__lte=now).delete()
            row.save(force_insert=True)
    except IntegrityError:
        return False
    return True


def cache_prune(*, now: datetime.datetime | None = None, batch: int = 1000) -> int:
    """Delete the expired entries, `batch` at a time (a short write lock each). Returns how many."""
    now = now or timezone.now()
    deleted = 0
    while True:
        ids = list(CachedResponse.objects.filter(expires_at__lte=now).order_by("expires_at")
                   .values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted
        deleted += CachedResponse.objects.filter(pk__in=ids).delete()[0]


def cache_purge(*, ids: list[int] | None = None) -> int:
    """Delete entries now, expired or not (all of them without `ids`): the admin's purge."""
    rows = CachedResponse.objects.all() if ids is None else CachedResponse.objects.filter(pk__in=ids)
    return rows.delete()[0]
