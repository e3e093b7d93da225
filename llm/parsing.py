"""A chat completion's JSON body or event stream, read into an Answer (text, usage, reasoning).

Parsed here rather than by the SDK's pydantic models, which cost more CPU than the rest of a step.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from llm.capabilities import THINK_CLOSE, THINK_OPEN, split_think_tags
from llm.errors import LLMError


# --- the call -----------------------------------------------------------------------------------
@dataclass
class StreamSink:
    on_delta: Callable[[str], None] | None
    parts: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    reasoning_field: str = ""
    ttft: float | None = None
    usage: Any = None
    finish: str = ""
    chunks: int = 0
    # Inside a leading <think> block: its text is reasoning, so listeners do not see it as the answer.
    thinking: bool = False
    held: str = ""


@dataclass
class Answer:
    text: str
    usage: dict[str, Any] | None
    finish: str
    reasoning: str = ""
    reasoning_field: str = ""  # where the server put the reasoning (llm.capabilities.REASONING_FIELDS)


# Where servers put a model's reasoning beside the answer: vLLM, llama.cpp and DeepSeek send
# reasoning_content, Ollama and newer vLLM reasoning.
_REASONING_KEYS = ("reasoning_content", "reasoning")


def _reasoning_of(part: dict[str, Any]) -> tuple[str, str]:
    for key in _REASONING_KEYS:
        value = part.get(key)
        if isinstance(value, str) and value:
            return value, key
    return "", ""


def _answer(text: str, usage: Any, finish: str, reasoning: str, field_name: str) -> Answer:
    if not reasoning:
        # Servers that leave the reasoning in the answer wrap it in <think> tags.
        reasoning, text = split_think_tags(text) if text.lstrip().startswith("<think>") else ("", text)
        field_name = "think_tags" if reasoning else ""
    return Answer(text, usage if isinstance(usage, dict) else None, finish, reasoning, field_name)


def usage_detail(usage: dict[str, Any] | None, details: str, name: str) -> int | None:
    part = usage.get(details) if usage else None
    value = part.get(name) if isinstance(part, dict) else None
    return value if isinstance(value, int) and value >= 0 else None


MAX_REPORTED_COST = Decimal(1_000_000)


def usage_cost(usage: dict[str, Any] | None) -> Decimal | None:
    """The cost a server reports in its usage (OpenRouter's `usage.cost`), exactly as it wrote it; None if absent or not a price."""
    value = usage.get("cost") if usage else None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        cost = Decimal(str(value))
    except InvalidOperation:
        return None
    # Over a million for one call is not a price but a broken server (and would not fit the column).
    return cost if cost.is_finite() and 0 <= cost <= MAX_REPORTED_COST else None


def _snippet(body: bytes | str, limit: int = 120) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


def _content_type(headers: Any) -> str:
    return (headers.get("content-type") or "no content type").split(";")[0].strip().lower()


def _choice_text(choice: dict[str, Any], key: str) -> str | None:
    part = choice.get(key)
    return part.get("content") if isinstance(part, dict) else None


def parse_completion(raw: Any) -> Answer:
    content_type = _content_type(raw.headers)
    body = raw.content
    if not content_type.endswith("json"):
        raise LLMError(f"the endpoint answered HTTP {raw.status_code} with {content_type} instead of a JSON chat "
                       f"completion: {_snippet(body)!r}", retryable=False, kind="bad_response")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" ({exc.msg} at character {exc.pos})" if isinstance(exc, json.JSONDecodeError) else ""
        raise LLMError(f"the endpoint sent invalid JSON{where}: {_snippet(body)!r}",
                       retryable=False, kind="bad_response") from exc
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise LLMError("the endpoint answered with a chat completion that has no choices",
                       retryable=False, kind="bad_response")
    message = choices[0].get("message")
    reasoning, field_name = _reasoning_of(message) if isinstance(message, dict) else ("", "")
    return _answer(_choice_text(choices[0], "message") or "", data.get("usage"), choices[0].get("finish_reason") or "",
                   reasoning, field_name)


async def read_stream(raw: Any, sink: StreamSink, started: float) -> Answer:
    content_type = _content_type(raw.headers)
    if content_type != "text/event-stream":
        body = await raw.aread()
        raise LLMError(f"the endpoint answered a streaming request with {content_type} instead of an event "
                       f"stream: {_snippet(body)!r}", retryable=False, kind="bad_response")
    try:
        async for line in raw.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, comments, event names
            data = line[5:].strip()
            if data == "[DONE]":
                break
            _read_event(data, sink, started)
    except (LLMError, asyncio.CancelledError):
        raise
    except Exception as exc:
        if "timeout" in type(exc).__name__.lower():
            raise LLMError("the endpoint stopped sending in the middle of the answer (read timeout)",
                           retryable=True, kind="timeout") from exc
        raise LLMError(f"the stream was cut off after {sink.chunks} chunks: the server closed the connection",
                       retryable=True, kind="bad_response") from exc
    if not sink.finish and not sink.parts and not sink.reasoning:
        raise LLMError(f"the stream ended after {sink.chunks} chunks without any text or finish reason",
                       retryable=True, kind="bad_response")
    return _answer("".join(sink.parts), sink.usage, sink.finish, "".join(sink.reasoning), sink.reasoning_field)


def _read_event(data: str, sink: StreamSink, started: float) -> None:
    """One `data:` event of the stream into the sink: text, reasoning, usage, finish reason."""
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError as exc:
        raise LLMError(f"the stream broke after {sink.chunks} chunks: an event was not valid JSON ({exc.msg})",
                       retryable=True, kind="bad_response") from exc
    sink.chunks += 1
    if not isinstance(chunk, dict):
        return
    if chunk.get("error"):
        error = chunk["error"]
        detail = error.get("message") if isinstance(error, dict) else error
        raise LLMError(f"the endpoint reported an error mid-stream: {detail}", retryable=True, kind="server")
    if chunk.get("usage"):
        sink.usage = chunk["usage"]
    choices = chunk.get("choices")
    if not choices or not isinstance(choices[0], dict):
        return
    delta = choices[0].get("delta")
    if isinstance(delta, dict):
        _read_delta(delta, sink, started)
    if choices[0].get("finish_reason"):
        sink.finish = choices[0]["finish_reason"]


def _read_delta(delta: dict[str, Any], sink: StreamSink, started: float) -> None:
    text = delta.get("content")
    if text:
        if sink.ttft is None:
            sink.ttft = time.perf_counter() - started
        first = not sink.parts
        sink.parts.append(text)
        if sink.on_delta is not None:
            _pass_on(sink, text, first)
    _reasoning_delta(delta, sink)


def _pass_on(sink: StreamSink, text: str, first: bool) -> None:
    """Send streamed answer text to the listener, holding back a leading <think> block."""
    if first and text.lstrip().startswith(THINK_OPEN):
        sink.thinking = True
    if sink.thinking:
        sink.held += text
        end = sink.held.find(THINK_CLOSE)
        if end < 0:
            return
        sink.thinking = False
        text = sink.held[end + len(THINK_CLOSE):].lstrip()
        sink.held = ""
    if text:
        sink.on_delta(text)


def _reasoning_delta(delta: dict[str, Any], sink: StreamSink) -> None:
    reasoning, field_name = _reasoning_of(delta)
    if reasoning:
        sink.reasoning.append(reasoning)
        sink.reasoning_field = field_name


