"""The one place that talks to LLMs: chat completions over openai.AsyncOpenAI.

The rest of the code sees `complete()`, `Completion` and `LLMError`. We do our own retries (the
SDK's are off) so that every attempt is recorded and `Retry-After` is honoured, and we shape each
request for what its server accepts (llm/capabilities.py) instead of failing. Pools are in
llm/pool.py, errors in llm/errors.py, retry timing in llm/retries.py, parsing in llm/parsing.py.
"""
from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx2
import openai

from core.internals.openai_request import post_options
from llm import ratelimit, tokens
from llm.capabilities import STANDARD, Capabilities, adapt, next_structured_dialect, shape_request
from llm.config import EndpointConfig
from llm.errors import LLMError, classify, redact
from llm.parsing import Answer, StreamSink, parse_completion, read_stream, usage_cost, usage_detail
from llm.pool import aclose_all, check_egress, client_for, limit
from llm.retries import backoff, gives_up

__all__ = ["Completion", "EndpointConfig", "LLMError", "aclose_all", "capabilities", "classify", "complete",
           "forget_capabilities", "list_models", "redact"]

# The SDK's HTTP response class (openai 3 is built on httpx2): asks `post` for the raw response.
_RAW_RESPONSE = httpx2.Response


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    tokens_estimated: bool
    latency_ms: int
    ttft_ms: int | None
    attempts: list[dict[str, Any]]
    reasoning: str = ""
    reasoning_tokens: int | None = None  # of completion_tokens, when the server says
    cached_tokens: int | None = None  # of prompt_tokens, when the server says
    reported_cost: Decimal | None = None  # when the server puts a cost in its usage
    # What this call found out about the server (llm.capabilities.FIELDS -> value), and what it said.
    learned: dict[str, Any] = field(default_factory=dict)
    learned_evidence: dict[str, str] = field(default_factory=dict)



# (endpoint id, model) -> (when, capabilities) learned by this process since its config was loaded.
_learned: dict[tuple[int, str], tuple[float, Capabilities]] = {}


def capabilities(config: EndpointConfig, model: str) -> Capabilities:
    """What the model's server accepts: learned here since `config` was loaded, else as loaded."""
    learned = _learned.get((config.id, model))
    if learned is not None and learned[0] >= config.loaded_at:
        return learned[1]
    return config.capabilities.get(model, STANDARD)


def forget_capabilities(config: EndpointConfig, model: str | None = None) -> None:
    """Drop what this process learned about the model (None: every model of the endpoint)."""
    for key in [key for key in _learned if key[0] == config.id and model in (None, key[1])]:
        del _learned[key]


def _remember(config: EndpointConfig, model: str, caps: Capabilities) -> None:
    """Use `caps` from now on in this process; the caller stores them (llm.services.capability_learn)
    for every other process, in its own transaction (the run engine: with the step's commit)."""
    _learned[(config.id, model)] = (time.time(), caps)



async def list_models(config: EndpointConfig) -> list[str]:
    """The model ids the endpoint lists (GET /models), through the pooled client."""
    client = client_for(config)
    try:
        async with limit(config):
            page = await client.models.list()
            return sorted(model.id for model in page.data)
    except Exception as exc:  # classified for the caller
        error = classify(exc, model="", timeout=config.timeout)
        error.message = redact(error.message, config.api_key)
        error.args = (error.message,)
        raise error from exc



# The SDK makes an idempotency key for every POST from uuid4 (an os.urandom call each), although
# the OpenAI client sends no idempotency header; handing it one of ours skips that.
_KEY_TAG = uuid.uuid4().hex
_calls = itertools.count(1)


def _idempotency_key() -> str:
    return f"llm-orchestrator-{_KEY_TAG}-{next(_calls)}"


async def _call_once(client: openai.AsyncOpenAI, request: dict[str, Any], sink: StreamSink, started: float) -> Answer:
    # The client's low-level request with a raw response: the SDK still does auth, timeouts, pooling
    # and error statuses, but skips its per-request TypedDict transform and pydantic models (per
    # streamed chunk, too), which cost more CPU than the rest of a step together; and the options are
    # those `post` would construct, copied from a template (core/internals/openai_request.py).
    stream = bool(request.get("stream"))
    raw = await client.request(_RAW_RESPONSE, post_options("/chat/completions", request, _idempotency_key()),
                               stream=stream, stream_cls=None)
    if not stream:
        return parse_completion(raw)
    try:
        return await read_stream(raw, sink, started)
    finally:
        await raw.aclose()


@dataclass
class _Learning:
    """What one call found out about the server, stored once the call succeeds."""

    caps: Capabilities
    changes: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, str] = field(default_factory=dict)
    adaptations: int = 0

    def adapt(self, error: LLMError, request: dict[str, Any]) -> dict[str, Any] | None:
        """The change to retry with when the server rejected an option we sent, or None."""
        if self.adaptations >= MAX_ADAPTATIONS:
            return None
        change = adapt(status=error.http_status, message=error.message, request=request, caps=self.caps)
        if change:
            self.adaptations += 1
            self.learn(change, error.message)
        return change

    def learn(self, change: dict[str, Any], said: str) -> None:
        self.caps = self.caps.changed(**change)
        self.changes.update(change)
        self.evidence.update(dict.fromkeys(change, said))

    def ignored_format(self, answer: Answer, request: dict[str, Any]) -> dict[str, Any] | None:
        """The next dialect when a server answered a response_format with prose (older Ollama ignores
        json_schema); None when the answer is JSON, was cut short, or nothing is left to try."""
        if "response_format" not in request or answer.finish == "length" or self.adaptations >= MAX_ADAPTATIONS:
            return None
        if answer.text.lstrip()[:1] in ("{", "[", ""):
            return None  # JSON, or JSON-like: whether it fits the schema is the caller's check
        change = next_structured_dialect(self.caps)
        if change:
            self.adaptations += 1
            self.learn(change, f"a {request['response_format'].get('type')} request was answered with text, not JSON")
        return change

    def observe(self, answer: Answer, request: dict[str, Any]) -> None:
        """What a successful answer shows: usage missing from streams, where reasoning comes."""
        if request.get("stream") and answer.usage is None and self.caps.stream_usage:
            said = "with stream_options.include_usage" if "stream_options" in request else "(stream_options refused)"
            self.learn({"stream_usage": False}, f"a stream {said} ended without usage")
        if answer.reasoning_field and answer.reasoning_field != self.caps.reasoning_field:
            self.learn({"reasoning_field": answer.reasoning_field}, f"an answer carried {answer.reasoning_field}")


# Rejections adapted to in one call: one per option at most, and the four structured dialects.
MAX_ADAPTATIONS = 6


def _sent_as(caps: Capabilities, json_schema: dict[str, Any] | None) -> dict[str, Any]:
    """How the request differed from the standard dialect, for the attempt's record."""
    sent: dict[str, Any] = {}
    if json_schema is not None and caps.structured_output != STANDARD.structured_output:
        sent["structured_output"] = caps.structured_output
    for name in ("stream_options", "token_limit_param", "temperature"):
        if getattr(caps, name) != getattr(STANDARD, name):
            sent[name] = getattr(caps, name)
    return sent


def _completion(answer: Answer, messages: list[dict[str, str]], model: str, sink: StreamSink, started_all: float,
                attempts: list[dict[str, Any]], learning: _Learning) -> Completion:
    usage = answer.usage
    estimated = usage is None or (not usage.get("prompt_tokens") and not usage.get("completion_tokens"))
    if estimated:
        prompt_tokens = tokens.count_messages(messages, model)
        completion_tokens = tokens.count(answer.text, model) + (tokens.count(answer.reasoning, model) if answer.reasoning else 0)
    else:
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
    return Completion(
        text=answer.text,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        finish_reason=answer.finish,
        tokens_estimated=estimated,
        latency_ms=round((time.perf_counter() - started_all) * 1000),
        ttft_ms=round(sink.ttft * 1000) if sink.ttft is not None else None,
        attempts=attempts,
        reasoning=answer.reasoning,
        reasoning_tokens=usage_detail(usage, "completion_tokens_details", "reasoning_tokens"),
        cached_tokens=usage_detail(usage, "prompt_tokens_details", "cached_tokens"),
        reported_cost=usage_cost(usage),
        learned=learning.changes, learned_evidence=learning.evidence,
    )


def _failure(exc: BaseException, config: EndpointConfig, model: str, attempt: int, started: float) -> tuple[LLMError, dict[str, Any]]:
    error = classify(exc, model=model, timeout=config.timeout)
    error.message = redact(error.message, config.api_key)
    error.args = (error.message,)
    record = {"attempt": attempt, "ok": False, "kind": error.kind, "http_status": error.http_status,
              "error": error.message, "latency_ms": round((time.perf_counter() - started) * 1000)}
    return error, record


def _final(error: LLMError, attempt: int, attempts: list[dict[str, Any]], sink: StreamSink) -> LLMError:
    if error.retryable and attempt > 1:
        error.message = f"{error.message} (gave up after {attempt} attempts)"
        error.args = (error.message,)
    error.attempts = attempts
    error.partial_text = "".join(sink.parts)
    return error


def _nothing() -> None:
    pass


async def _pause_if_rate_limited(config: EndpointConfig, error: LLMError, delay: float) -> None:
    # A 429 is the endpoint's word for everyone calling it, not only this call (llm/ratelimit.py).
    if error.http_status == 429:
        await ratelimit.pause(config, delay)


async def _wait_before_retry(config: EndpointConfig, record: dict[str, Any], attempt: int, error: LLMError) -> None:
    delay = backoff(attempt, error.retry_after)
    record["retry_in_ms"] = round(delay * 1000)
    await _pause_if_rate_limited(config, error, delay)
    await asyncio.sleep(delay)


def _settled(pacer: ratelimit.Pacer | None, booked: float, completion: Completion) -> Completion:
    if pacer is not None and booked:
        pacer.settle(booked, completion.prompt_tokens + completion.completion_tokens)
    return completion


def _ignored_format(learning: _Learning, answer: Answer, request: dict[str, Any], attempts: list[dict[str, Any]],
                    attempt: int, latency_ms: int) -> bool:
    """True (and the attempt recorded) when the server answered prose to a response_format: try the next dialect."""
    ignored = learning.ignored_format(answer, request)
    if ignored:
        attempts.append({"attempt": attempt, "ok": False, "kind": "ignored_option", "latency_ms": latency_ms,
                         "error": "the server ignored response_format: the answer is not JSON", "adapted": ignored})
    return bool(ignored)


def _success(attempt: int, latency_ms: int, caps: Capabilities, json_schema: dict[str, Any] | None) -> dict[str, Any]:
    record: dict[str, Any] = {"attempt": attempt, "ok": True, "latency_ms": latency_ms}
    sent_as = _sent_as(caps, json_schema)
    if sent_as:
        record["sent_as"] = sent_as
    return record


async def complete(
    config: EndpointConfig,
    *,
    model: str,
    messages: list[dict[str, str]],
    params: dict[str, Any] | None = None,
    stream: bool = False,
    json_schema: dict[str, Any] | None = None,
    on_delta: Callable[[str], None] | None = None,
    on_retry: Callable[[], None] | None = None,
    interactive: bool = False,
) -> Completion:
    """One chat completion, retried on 429, 5xx, timeouts and connection errors.

    The request is shaped for what the server accepts (llm/capabilities.py); a rejection of an
    option we sent is retried at once in the next dialect, and what worked is stored. `on_delta`
    receives streamed text as it arrives; `on_retry` is called before a retried attempt, so a
    listener can drop the partial text of the failed one. `interactive` calls (a person waits at
    a page) give up at once on errors a retry within seconds cannot fix.
    """
    await check_egress(config)
    client = client_for(config)
    learning = _Learning(capabilities(config, model))
    restart = on_retry or _nothing
    attempts: list[dict[str, Any]] = []
    started_all = time.perf_counter()
    attempt = 0
    while True:
        attempt += 1
        request = shape_request({"model": model, "messages": messages, **(params or {})}, learning.caps, json_schema,
                                stream=stream)
        sink = StreamSink(on_delta=on_delta)
        pacer = ratelimit.pacer_for(config)
        booked = await pacer.wait_turn(request) if pacer is not None else 0.0
        started = time.perf_counter()
        try:
            async with limit(config):
                answer = await _call_once(client, request, sink, started)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure is classified and recorded below
            error, record = _failure(exc, config, model, attempt, started)
            adapted = learning.adapt(error, request)
            if adapted:
                record["adapted"] = adapted
            attempts.append(record)
            if not adapted and gives_up(error, attempt, config, interactive=interactive):
                await _pause_if_rate_limited(config, error, backoff(attempt, error.retry_after))
                raise _final(error, attempt, attempts, sink) from exc
            restart()
            if not adapted:
                await _wait_before_retry(config, record, attempt, error)
            continue
        latency_ms = round((time.perf_counter() - started) * 1000)
        if json_schema is not None and _ignored_format(learning, answer, request, attempts, attempt, latency_ms):
            restart()
            continue
        attempts.append(_success(attempt, latency_ms, learning.caps, json_schema))
        learning.observe(answer, request)
        if learning.changes:
            _remember(config, model, learning.caps)
        return _settled(pacer, booked, _completion(answer, messages, model, sink, started_all, attempts, learning))

