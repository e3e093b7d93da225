"""How the fake server (fakellm/server.py) imitates real OpenAI-compatible servers: one row per dialect.

What each row copies, and where it was checked (links in docs/compatibility.md):

| dialect      | imitates (checked against)                | structured output                                    | stream usage | reasoning           |
|--------------|-------------------------------------------|------------------------------------------------------|--------------|---------------------|
| openai       | api.openai.com chat completions, 2025-26  | json_schema, json_object; vLLM-only args → 400       | yes          | hidden, counted     |
| vllm         | vLLM 0.11.x (docs v0.11.2)                | json_schema, json_object, guided_json, structured_outputs.json | yes | reasoning + reasoning_content |
| vllm-latest  | vLLM >= 0.12 (guided_json removed), docs v0.26 | json_schema, json_object, structured_outputs.json; guided_json ignored | yes | reasoning |
| ollama       | Ollama openai/openai.go, >= 0.9           | json_schema, json_object                             | yes (>= 0.5.2) | reasoning         |
| ollama-old   | Ollama < 0.5.0 (openai.go: json_object only) | json_object; json_schema silently ignored (200, free text) | no     | none                |
| llamacpp     | llama-server before json_schema (utils.hpp runtime_error) | json_object (+ "schema"); json_schema → 500 | no           | reasoning_content   |
| lmstudio-old | LM Studio 0.3.5-0.3.9                     | json_schema only; any other type → 400 (plain string error) | no (stream_options ignored) | none |
| strict-422   | a FastAPI server whose model forbids extras | none: response_format → 422                        | yes          | none                |

OpenAI's reasoning models (o-series, gpt-5) refuse `max_tokens` and a temperature other than 1, and report
`completion_tokens_details.reasoning_tokens` inside `completion_tokens` without sending the reasoning text.
The refusal bodies below are the servers' own, quoted from their source or from users' reports of them.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# A refusal is (HTTP status, JSON body); a check returns one or None. `reasoning` says the model is a reasoning model.
Refusal = tuple[int, Any]
Check = Callable[[dict[str, Any], bool], "Refusal | None"]

VLLM_SCHEMA_PARAMS = ("guided_json", "structured_outputs")


def openai_error(message: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


def _format_type(body: dict[str, Any]) -> str | None:
    response_format = body.get("response_format")
    return response_format.get("type") if isinstance(response_format, dict) else None


def openai_unknown_argument(body: dict[str, Any], reasoning: bool) -> Refusal | None:
    """OpenAI refuses request fields it does not know, such as vLLM's schema parameters."""
    for name in VLLM_SCHEMA_PARAMS:
        if name in body:
            return 400, openai_error(f"Unrecognized request argument supplied: {name}")
    return None


def openai_max_tokens(body: dict[str, Any], reasoning: bool) -> Refusal | None:
    if reasoning and body.get("max_tokens") is not None:
        return 400, openai_error(
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.", param="max_tokens", code="unsupported_parameter")
    return None


def openai_temperature(body: dict[str, Any], reasoning: bool) -> Refusal | None:
    temperature = body.get("temperature")
    if reasoning and temperature is not None and temperature != 1:
        return 400, openai_error(
            f"Unsupported value: 'temperature' does not support {json.dumps(temperature)} with this model. "
            "Only the default (1) value is supported.", param="temperature", code="unsupported_value")
    return None


def llamacpp_response_format(body: dict[str, Any], reasoning: bool) -> Refusal | None:
    """llama-server threw std::runtime_error, which its handler answers as a 500 server_error."""
    kind = _format_type(body)
    if kind and kind not in ("text", "json_object"):
        message = f'response_format type must be one of "text" or "json_object", but got: {kind}'
        return 500, {"error": {"code": 500, "message": message, "type": "server_error"}}
    return None


def lmstudio_response_format(body: dict[str, Any], reasoning: bool) -> Refusal | None:
    """LM Studio 0.3.x: a bare string as the error, and only json_schema allowed."""
    if "response_format" in body and _format_type(body) != "json_schema":
        return 400, {"error": "'response_format.type' must be 'json_schema'"}
    return None


def fastapi_response_format(body: dict[str, Any], reasoning: bool) -> Refusal | None:
    """A pydantic v2 request model with extra="forbid", as FastAPI reports it."""
    if "response_format" in body:
        return 422, {"detail": [{"type": "extra_forbidden", "loc": ["body", "response_format"],
                                 "msg": "Extra inputs are not permitted", "input": body["response_format"]}]}
    return None


@dataclass(frozen=True)
class Dialect:
    name: str
    checks: tuple[Check, ...] = ()  # request validations in order; the first refusal is the answer
    ignores_json_schema: bool = False  # answers free text to response_format json_schema
    json_object_schema: bool = False  # honours {"type": "json_object", "schema": {...}}
    schema_params: tuple[str, ...] = ()  # extra body fields that carry a JSON schema
    stream_usage: bool = True  # sends the usage chunk when stream_options.include_usage
    usage_details: bool = False  # completion_tokens_details / prompt_tokens_details in usage
    hidden_reasoning: bool = False  # counts reasoning tokens but never sends the text
    reasoning_fields: tuple[str, ...] = ()  # message / delta fields that carry the reasoning text
    reasoning_models: tuple[str, ...] = ()  # accepted as models, and the only ones that reason
    any_model: bool = False  # serves whatever model name is asked for


DIALECTS: dict[str, Dialect] = {d.name: d for d in (
    Dialect("openai", checks=(openai_unknown_argument, openai_max_tokens, openai_temperature),
            usage_details=True, hidden_reasoning=True, reasoning_models=("o4-mini", "gpt-5-mini")),
    Dialect("vllm", schema_params=("guided_json", "structured_outputs"),
            reasoning_fields=("reasoning", "reasoning_content"), reasoning_models=("deepseek-r1", "qwq-32b")),
    Dialect("vllm-latest", schema_params=("structured_outputs",),
            reasoning_fields=("reasoning",), reasoning_models=("deepseek-r1", "qwq-32b")),
    Dialect("ollama", reasoning_fields=("reasoning",), reasoning_models=("deepseek-r1", "qwen3")),
    Dialect("ollama-old", ignores_json_schema=True, stream_usage=False),
    Dialect("llamacpp", checks=(llamacpp_response_format,), json_object_schema=True, stream_usage=False,
            reasoning_fields=("reasoning_content",), reasoning_models=("deepseek-r1-distill",), any_model=True),
    Dialect("lmstudio-old", checks=(lmstudio_response_format,), stream_usage=False),
    Dialect("strict-422", checks=(fastapi_response_format,)),
)}


def dialect_refusal(dialect: Dialect, body: dict[str, Any], reasoning: bool) -> Refusal | None:
    for check in dialect.checks:
        refusal = check(body, reasoning)
        if refusal is not None:
            return refusal
    return None


@dataclass(frozen=True)
class Output:
    """What the answer must be: free "text", any "json", or JSON valid against `schema`."""

    kind: str
    schema: dict[str, Any] | None = None


def _schema_param(body: dict[str, Any], param: str) -> dict[str, Any] | None:
    value = body.get(param)
    if param == "structured_outputs":
        value = value.get("json") if isinstance(value, dict) else None
    if isinstance(value, str):  # vLLM takes the schema as an object or as its JSON text
        value = json.loads(value)
    return value if isinstance(value, dict) else None


def instructed_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """A schema asked for in a system message ("... JSON schema:\n{...}"), as a model that follows
    instructions would honour it; the client sends one when the server cannot enforce a schema."""
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if message.get("role") != "system" or not isinstance(content, str) or "JSON schema:\n" not in content:
            continue
        try:
            schema = json.loads(content.split("JSON schema:\n", 1)[1])
        except json.JSONDecodeError:
            continue
        if isinstance(schema, dict):
            return schema
    return None


def requested_output(dialect: Dialect, body: dict[str, Any]) -> Output:
    output = _requested_output(dialect, body)
    if output.kind != "schema":
        schema = instructed_schema(body)
        if schema is not None:
            return Output("schema", schema)
    return output


def _requested_output(dialect: Dialect, body: dict[str, Any]) -> Output:
    for param in dialect.schema_params:
        schema = _schema_param(body, param)
        if schema is not None:
            return Output("schema", schema)
    response_format = body.get("response_format")
    if not isinstance(response_format, dict) or not response_format:
        return Output("text")
    kind = response_format.get("type")
    if kind == "text" or (kind == "json_schema" and dialect.ignores_json_schema):
        return Output("text")
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return Output("schema", schema) if schema else Output("json")
    if kind == "json_object" and dialect.json_object_schema and isinstance(response_format.get("schema"), dict):
        return Output("schema", response_format["schema"])
    return Output("json")


def reasoning_text(prompt: str, words: int = 6) -> str:
    """Deterministic stand-in for a model's thinking; never part of the answer."""
    return "Thinking about: " + (" ".join(prompt.split()[:words]) or "nothing")
