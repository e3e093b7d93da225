"""How a request is shaped for what a server accepts, and which rejections change that (no network)."""
from typing import Any

import pytest

from llm.capabilities import STANDARD, Capabilities, adapt, field_problem, shape_request, split_think_tags

SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
MESSAGES = [{"role": "user", "content": "Hi"}]


def shaped(caps: Capabilities = STANDARD, *, schema: dict[str, Any] | None = SCHEMA, stream: bool = False,
           **params: Any) -> dict[str, Any]:
    return shape_request({"model": "m", "messages": MESSAGES, **params}, caps, schema, stream=stream)


def test_the_standard_dialect_sends_the_openai_request_unchanged() -> None:
    request = shaped(stream=True, max_tokens=5, temperature=0.2)
    assert request == {
        "model": "m", "messages": MESSAGES, "max_tokens": 5, "temperature": 0.2, "stream": True,
        "stream_options": {"include_usage": True},
        "response_format": {"type": "json_schema", "json_schema": {"name": "output", "schema": SCHEMA}},
    }


@pytest.mark.parametrize(("dialect", "response_format", "instructed"), [
    ("json_object_schema", {"type": "json_object", "schema": SCHEMA}, True),
    ("json_object", {"type": "json_object"}, True),
    ("prompt", None, True),
])
def test_each_structured_dialect(dialect: str, response_format: dict[str, Any] | None, instructed: bool) -> None:
    request = shaped(Capabilities(structured_output=dialect))
    assert request.get("response_format") == response_format
    assert (len(request["messages"]) == 2) is instructed
    if instructed:
        assert request["messages"][-1]["role"] == "system"
        assert '"required": ["ok"]' in request["messages"][-1]["content"]
    assert MESSAGES == [{"role": "user", "content": "Hi"}]  # the caller's list is not changed


def test_token_limit_temperature_and_stream_options_follow_the_capabilities() -> None:
    caps = Capabilities(token_limit_param="max_completion_tokens", temperature=False, stream_options=False)
    request = shaped(caps, schema=None, stream=True, max_tokens=5, temperature=0.2)
    assert request == {"model": "m", "messages": MESSAGES, "max_completion_tokens": 5, "stream": True}


# The bodies real servers send (docs/compatibility.md has the sources).
OPENAI_MAX_TOKENS = ("Unsupported parameter: 'max_tokens' is not supported with this model. "
                     "Use 'max_completion_tokens' instead.")
OPENAI_TEMPERATURE = ("Unsupported value: 'temperature' does not support 0.2 with this model. "
                      "Only the default (1) value is supported.")
LLAMA_CPP = 'response_format type must be one of "text" or "json_object", but got: json_schema'
FASTAPI_422 = '{"detail":[{"loc":["body","response_format"],"msg":"extra fields not permitted","type":"value_error"}]}'


@pytest.mark.parametrize(("status", "message", "params", "change"), [
    (400, OPENAI_MAX_TOKENS, {"max_tokens": 5}, {"token_limit_param": "max_completion_tokens"}),
    (400, "Unrecognized request argument supplied: max_completion_tokens", {"max_completion_tokens": 5},
     {"token_limit_param": "max_tokens"}),
    (400, OPENAI_TEMPERATURE, {"temperature": 0.2}, {"temperature": False}),
    (400, "Unrecognized request argument supplied: stream_options", {}, {"stream_options": False}),
    (500, LLAMA_CPP, {}, {"structured_output": "json_object_schema"}),
    (422, FASTAPI_422, {}, {"structured_output": "json_object_schema"}),
    (400, "json_schema is not supported, use json_object", {}, {"structured_output": "json_object_schema"}),
])
def test_a_rejection_of_an_option_we_sent_is_adapted_to(status: int, message: str, params: dict[str, Any],
                                                       change: dict[str, Any]) -> None:
    if "max_completion_tokens" in params:
        caps = Capabilities(token_limit_param="max_completion_tokens")
        params = {"max_tokens": params["max_completion_tokens"]}
    else:
        caps = STANDARD
    request = shaped(caps, stream=True, **params)
    assert adapt(status=status, message=message, request=request, caps=caps) == change


def test_structured_output_falls_back_one_dialect_at_a_time_and_stops_at_the_prompt() -> None:
    caps = STANDARD
    seen = []
    while (change := adapt(status=400, message="response_format is not supported", request=shaped(caps), caps=caps)):
        caps = caps.changed(**change)
        seen.append(caps.structured_output)
    assert seen == ["json_object_schema", "json_object", "prompt"]


@pytest.mark.parametrize(("status", "message", "schema"), [
    (500, "CUDA out of memory", SCHEMA),  # a 500 that names nothing we sent: retried as before, not adapted
    (500, "internal error", None),
    (400, "the prompt is too long for this model", None),  # nothing we can leave out
    (401, "response_format", SCHEMA),  # not a rejection of the request's shape
    (None, "connection refused", SCHEMA),
])
def test_other_failures_are_not_adapted_to(status: int | None, message: str, schema: dict[str, Any] | None) -> None:
    assert adapt(status=status, message=message, request=shaped(schema=schema), caps=STANDARD) is None


@pytest.mark.parametrize(("text", "reasoning", "answer"), [
    ("<think>tides follow the moon</think>\n\nThe answer.", "tides follow the moon", "The answer."),
    ("  <think>\nstill thinking", "still thinking", ""),
    ("No tags <think>here</think>", "", "No tags <think>here</think>"),
    ("", "", ""),
])
def test_think_tags_at_the_start_are_reasoning(text: str, reasoning: str, answer: str) -> None:
    assert split_think_tags(text) == (reasoning, answer)


def test_capability_values_are_checked() -> None:
    assert field_problem("structured_output", "json_object") is None
    assert "is not one of" in field_problem("structured_output", "xml")
    assert field_problem("stream_options", "yes") == "must be true or false"
    assert field_problem("colour", "red").startswith("unknown capability")
