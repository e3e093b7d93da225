"""The response cache around a step's LLM call (the store and its keys: llm/cache.py; docs/cache.md).

Whether a step uses the cache: a run asking for none never does ("no cache" wins); otherwise a step
whose payload sets a time to live does, and with a run asking for the cache every step does (the
payload's time to live, else LLM_CACHE_TTL_SECONDS). A hit makes no call: it spent no tokens and
cost nothing, and its Response says what it saved. Only a whole, valid answer is stored: a failed
step (an error, a cut stream, structured output that never matched its schema) or a cancelled one
never is. The lookup and the store are short statements of their own on the database thread,
before and after the call, never inside a transaction.
"""
from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from django.utils import timezone

from llm.cache import CachedAnswer, cache_key, cache_lookup, cache_store
from prices.book import step_cost
from runs.engine import dbthread, events
from runs.engine.ledger import Claim, StepResult
from runs.models import CacheMode, CacheStatus, ResponseStatus

logger = logging.getLogger(__name__)

StepCall = Callable[[Claim, list[dict[str, str]], "events.StepDeltas | None"], Awaitable[StepResult]]

# A replayed answer goes to the stream listener word by word, as a server would send it.
_WORDS = re.compile(r"\s*\S+|\s+")


def step_cache_ttl(claim: Claim) -> int | None:
    """How long the step's answer is kept, or None when the step does not use the cache."""
    if claim.cache_mode == CacheMode.OFF or claim.endpoint is None:
        return None
    ttl = claim.step["payload"].get("cache_ttl")
    if ttl:
        return int(ttl)
    return settings.LLM_CACHE_TTL_SECONDS if claim.cache_mode == CacheMode.USE else None


async def step_call(claim: Claim, messages: list[dict[str, str]], deltas: events.StepDeltas | None,
                    call: StepCall) -> StepResult:
    """`call(claim, messages, deltas)` (the runner's LLM call), or the cached answer instead of it."""
    ttl = step_cache_ttl(claim)
    if ttl is None:
        return await call(claim, messages, deltas)
    assert claim.endpoint is not None
    payload = claim.step["payload"]
    schema = payload.get("json_schema")
    key = cache_key(claim.endpoint, model=payload["model"], messages=messages, params=payload["params"],
                    json_schema=schema)
    started = time.perf_counter()
    answer = await _lookup(claim, key)
    if answer is not None:
        hit = _hit(claim, messages, answer, schema, started)
        if hit is not None:
            if deltas is not None:
                for word in _WORDS.findall(answer.text):
                    deltas.add(word)
            return hit
    result = await call(claim, messages, deltas)
    result.cache = {"cache_status": CacheStatus.MISS.value}
    if result.status == ResponseStatus.SUCCEEDED:
        await _store(claim, key, result, ttl)
    return result


async def _lookup(claim: Claim, key: str) -> CachedAnswer | None:
    try:
        return await dbthread.call(cache_lookup, key=key)
    except Exception:  # a cache that cannot be read costs a call, never the step
        logger.warning("run %s step %s: the cache could not be read", claim.run_id, claim.index + 1, exc_info=True)
        return None


def _hit(claim: Claim, messages: list[dict[str, str]], answer: CachedAnswer, schema: dict[str, Any] | None,
         started: float) -> StepResult | None:
    """The step answered from the cache (None: the stored text is not the JSON its schema asks for)."""
    output_json = None
    if schema is not None:
        try:
            output_json = json.loads(answer.text)
        except json.JSONDecodeError:
            return None
    saved = (step_cost(claim.rate, prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens,
                       cached_tokens=answer.cached_tokens, reasoning_tokens=answer.reasoning_tokens,
                       latency_ms=answer.latency_ms, reported=answer.reported_cost)
             if claim.rate is not None else None)
    return StepResult(
        status=ResponseStatus.SUCCEEDED, messages=messages, output=answer.text, output_json=output_json,
        reasoning=answer.reasoning, finish_reason=answer.finish_reason,
        latency_ms=round((time.perf_counter() - started) * 1000),
        cache={"cache_status": CacheStatus.HIT.value, "cache_saved_prompt_tokens": answer.prompt_tokens,
               "cache_saved_completion_tokens": answer.completion_tokens,
               "cache_saved_cost_nano": saved.nano if saved else None,
               "cache_saved_cost_currency": (saved.currency or None) if saved else None,
               "cache_saved_latency_ms": answer.latency_ms, "cache_stored_at": answer.created_at},
    )


async def _store(claim: Claim, key: str, result: StepResult, ttl: int) -> None:
    assert claim.endpoint is not None
    answer = CachedAnswer(
        text=result.output, reasoning=result.reasoning, finish_reason=result.finish_reason,
        prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
        reasoning_tokens=result.reasoning_tokens, cached_tokens=result.cached_tokens,
        tokens_estimated=result.tokens_estimated, reported_cost=result.reported_cost, latency_ms=result.latency_ms,
        created_at=timezone.now())
    try:
        await dbthread.call(cache_store, key=key, endpoint_id=claim.endpoint.id, model=claim.step["payload"]["model"],
                            answer=answer, ttl_seconds=ttl)
    except Exception:  # the step's answer is the record; a cache that could not keep it only costs a later call
        logger.warning("run %s step %s: the answer could not be cached", claim.run_id, claim.index + 1, exc_info=True)
