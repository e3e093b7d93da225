"""What a server (and model) accepts, and how a request is shaped for it: no database, no network.

A request starts in the standard dialect. When the server rejects an option we sent (a 400 or
422, or a 500 whose body names the option), `adapt` says what to send instead; the client retries
once in that dialect and, if it then succeeds, the change is stored (llm/services.py) so that
every process and worker sends the right thing first time. docs/compatibility.md lists what each
server needs.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

# Structured output, best first: each is the fallback of the one before.
STRUCTURED_DIALECTS = ("json_schema", "json_object_schema", "json_object", "prompt")
STRUCTURED_LABELS = {
    "json_schema": "json_schema: the server enforces the schema",
    "json_object_schema": "json_object with schema: grammar-constrained",
    "json_object": "json_object: any JSON, checked against the schema here",
    "prompt": "instructions in the prompt: checked against the schema here, retried",
}
TOKEN_LIMIT_PARAMS = ("max_tokens", "max_completion_tokens")
REASONING_FIELDS = ("", "reasoning_content", "reasoning", "think_tags")
REASONING_LABELS = {
    "": "none seen", "reasoning_content": "reasoning_content field", "reasoning": "reasoning field",
    "think_tags": "<think> tags in the answer",
}
# The capabilities a person may set or the client may learn, and their types.
FIELDS = {
    "structured_output": STRUCTURED_DIALECTS,
    "stream_options": bool,
    "stream_usage": bool,
    "token_limit_param": TOKEN_LIMIT_PARAMS,
    "temperature": bool,
    "reasoning_field": REASONING_FIELDS,
}


@dataclass(frozen=True)
class Capabilities:
    """The defaults are the standard (OpenAI) dialect: an endpoint that speaks it never adapts."""

    structured_output: str = "json_schema"
    stream_options: bool = True
    stream_usage: bool = True
    token_limit_param: str = "max_tokens"
    temperature: bool = True
    reasoning_field: str = ""

    def changed(self, **changes: Any) -> Capabilities:
        return dataclasses.replace(self, **changes)


STANDARD = Capabilities()


def value_label(name: str, value: Any) -> str:
    """How a capability's value reads on the pages."""
    if FIELDS.get(name) is bool:
        return "yes" if value else "no"
    labels = {"structured_output": STRUCTURED_LABELS, "reasoning_field": REASONING_LABELS}.get(name, {})
    return labels.get(value, str(value))


def field_problem(name: str, value: Any) -> str | None:
    """Why `value` cannot be the capability `name`, or None."""
    allowed = FIELDS.get(name)
    if allowed is None:
        return f"unknown capability; known: {', '.join(FIELDS)}"
    if allowed is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if value not in allowed:
        return f"{value!r} is not one of: {', '.join(repr(v) for v in allowed)}"
    return None


def schema_instruction(schema: dict[str, Any]) -> dict[str, str]:
    """The system message that asks for JSON when the server cannot be told to produce it."""
    return {"role": "system", "content": "Answer with one JSON value only, no prose and no code fence, "
                                         f"valid against this JSON schema:\n{json.dumps(schema)}"}


def shape_request(request: dict[str, Any], caps: Capabilities, json_schema: dict[str, Any] | None,
                  *, stream: bool) -> dict[str, Any]:
    """Add stream options and structured output to `request`, and rename or drop what the server refuses."""
    if stream:
        request["stream"] = True
        if caps.stream_options:
            request["stream_options"] = {"include_usage": True}
    if caps.token_limit_param == "max_completion_tokens" and "max_tokens" in request:
        request["max_completion_tokens"] = request.pop("max_tokens")
    if not caps.temperature:
        request.pop("temperature", None)
    if json_schema is None:
        return request
    dialect = caps.structured_output
    if dialect == "json_schema":
        request["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": json_schema}}
        return request
    # Unless the server enforces the schema itself, the prompt says which JSON to write (servers
    # that ignore a json_object's schema need it; OpenAI's json_object wants the word JSON).
    request["messages"] = [*request["messages"], schema_instruction(json_schema)]
    if dialect == "json_object_schema":
        request["response_format"] = {"type": "json_object", "schema": json_schema}
    elif dialect == "json_object":
        request["response_format"] = {"type": "json_object"}
    return request


def _names(text: str, *words: str) -> bool:
    return any(word in text for word in words)


def adapt(*, status: int | None, message: str, request: dict[str, Any], caps: Capabilities) -> dict[str, Any] | None:
    """What to change when the server rejected `request` with `status` and `message`, or None.

    A 400 or 422 is a rejection of what we sent; a 500 counts only when its body names an option
    we sent (llama.cpp answers an unknown response_format with a 500). Anything else is not ours to adapt.
    """
    if status is None:
        return None
    text = message.lower()
    if status not in (400, 422) and not (status >= 500 and _names_sent_option(text, request)):
        return None
    if "stream_options" in request and _names(text, "stream_options", "include_usage"):
        return {"stream_options": False}
    if "max_tokens" in request and "max_tokens" in text.replace("max_completion_tokens", ""):
        return {"token_limit_param": "max_completion_tokens"}
    if "max_completion_tokens" in request and "max_completion_tokens" in text:
        return {"token_limit_param": "max_tokens"}
    if "temperature" in request and "temperature" in text:
        return {"temperature": False}
    return _structured_fallback(text, status, request, caps)


def _names_sent_option(text: str, request: dict[str, Any]) -> bool:
    sent = [name for name in ("stream_options", "max_tokens", "max_completion_tokens", "temperature",
                              "response_format") if name in request]
    if "response_format" in request:
        sent += ["json_schema", "json_object"]
    return any(name in text for name in sent)


def _structured_fallback(text: str, status: int, request: dict[str, Any], caps: Capabilities) -> dict[str, Any] | None:
    if "response_format" not in request:
        return None
    # A 400/422 that names nothing we know of, with a response_format sent: the format is the
    # likeliest culprit (servers word it "json", "schema", "format", "grammar").
    if status >= 500 and not _names(text, "response_format", "json_schema", "json_object", "schema"):
        return None
    if status < 500 and not _names(text, "response_format", "json", "schema", "format", "grammar"):
        return None
    return next_structured_dialect(caps)


def next_structured_dialect(caps: Capabilities) -> dict[str, Any] | None:
    """The fallback of the structured-output dialect in use, or None after the last."""
    position = STRUCTURED_DIALECTS.index(caps.structured_output)
    if position + 1 >= len(STRUCTURED_DIALECTS):
        return None
    return {"structured_output": STRUCTURED_DIALECTS[position + 1]}


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def split_think_tags(text: str) -> tuple[str, str]:
    """(reasoning, answer) of an answer that starts with a <think> block; ("", text) otherwise."""
    stripped = text.lstrip()
    if not stripped.startswith(THINK_OPEN):
        return "", text
    end = stripped.find(THINK_CLOSE)
    if end < 0:
        return stripped[len(THINK_OPEN):].strip(), ""
    return stripped[len(THINK_OPEN):end].strip(), stripped[end + len(THINK_CLOSE):].lstrip()
