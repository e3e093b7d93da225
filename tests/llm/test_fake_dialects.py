"""The fake server's dialects over real HTTP: each answers, refuses and streams as its real server does."""
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from fakellm.server import reply_text
from tests.fake_llm import FakeLLM

PROMPT = "Tell me about tides"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}]
THINKING = "Thinking about: Tell me about tides"
ANSWER = reply_text(PROMPT, 20)
SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}, "count": {"type": "integer"}},
          "required": ["title", "count"], "additionalProperties": False}
JSON_SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "note", "schema": SCHEMA, "strict": True}}
STREAM_USAGE = {"stream": True, "stream_options": {"include_usage": True}}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    yield fake
    fake.stop()


@pytest.fixture
def fake(server: FakeLLM) -> FakeLLM:
    server.reset()
    return server


def post(fake: FakeLLM, **body: Any) -> tuple[int, Any]:
    body.setdefault("model", "gpt-4o-mini")
    body.setdefault("messages", MESSAGES)
    request = urllib.request.Request(f"{fake.base_url}/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    if not body.get("stream"):
        return status, json.loads(raw)
    events = [block.removeprefix("data: ") for block in raw.split("\n\n") if block]
    assert events[-1] == "[DONE]"
    return status, [json.loads(event) for event in events[:-1]]


def answer(fake: FakeLLM, **body: Any) -> dict[str, Any]:
    status, reply = post(fake, **body)
    assert status == 200, reply
    return reply


def deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The deltas after the opening role chunk, up to the finish chunk."""
    return [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]][1:-1]


def usage_chunks(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [chunk["usage"] for chunk in chunks if chunk.get("usage")]


def content_of(reply: dict[str, Any]) -> str:
    return reply["choices"][0]["message"]["content"]


# --- openai -------------------------------------------------------------------------------------
def test_openai_is_the_default_and_its_usage_adds_reasoning_and_cached_token_details(fake: FakeLLM) -> None:
    fake.control(cached_tokens=4)
    reply = answer(fake)
    assert content_of(reply) == ANSWER
    assert set(reply["choices"][0]["message"]) == {"role", "content", "refusal"}
    assert reply["usage"] == {"prompt_tokens": 6, "completion_tokens": 20, "total_tokens": 26,
                              "prompt_tokens_details": {"cached_tokens": 4},
                              "completion_tokens_details": {"reasoning_tokens": 0}}
    [streamed_usage] = usage_chunks(post(fake, **STREAM_USAGE)[1])
    assert streamed_usage == reply["usage"]


def test_openai_json_schema_answer_is_valid_against_the_schema(fake: FakeLLM) -> None:
    jsonschema.validate(json.loads(content_of(answer(fake, response_format=JSON_SCHEMA_FORMAT))), SCHEMA)


def test_openai_reasoning_model_refuses_max_tokens_with_openais_body(fake: FakeLLM) -> None:
    assert post(fake, model="o4-mini", max_tokens=50) == (400, {"error": {
        "message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
                   "Use 'max_completion_tokens' instead.",
        "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}})
    assert answer(fake, model="o4-mini", max_completion_tokens=50)["choices"][0]["finish_reason"] == "stop"
    assert answer(fake, max_tokens=50)["usage"]["completion_tokens"] == 20  # ordinary models keep max_tokens


def test_openai_reasoning_model_refuses_a_temperature_other_than_1(fake: FakeLLM) -> None:
    assert post(fake, model="gpt-5-mini", temperature=0.2) == (400, {"error": {
        "message": "Unsupported value: 'temperature' does not support 0.2 with this model. "
                   "Only the default (1) value is supported.",
        "type": "invalid_request_error", "param": "temperature", "code": "unsupported_value"}})
    assert content_of(answer(fake, model="gpt-5-mini", temperature=1)) == ANSWER


def test_openai_reasoning_is_counted_inside_completion_tokens_and_never_sent(fake: FakeLLM) -> None:
    reply = answer(fake, model="o4-mini")
    assert set(reply["choices"][0]["message"]) == {"role", "content", "refusal"}
    assert content_of(reply) == ANSWER
    assert reply["usage"]["completion_tokens"] == 28
    assert reply["usage"]["completion_tokens_details"] == {"reasoning_tokens": 8}
    chunks = post(fake, model="o4-mini", **STREAM_USAGE)[1]
    assert all(set(delta) == {"content"} for delta in deltas(chunks))
    assert usage_chunks(chunks)[0]["completion_tokens_details"] == {"reasoning_tokens": 8}


def test_openai_refuses_vllms_schema_parameters(fake: FakeLLM) -> None:
    assert post(fake, guided_json=SCHEMA) == (400, {"error": {
        "message": "Unrecognized request argument supplied: guided_json",
        "type": "invalid_request_error", "param": None, "code": None}})


# --- vllm ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [
    {"response_format": JSON_SCHEMA_FORMAT}, {"guided_json": SCHEMA}, {"guided_json": json.dumps(SCHEMA)},
    {"structured_outputs": {"json": SCHEMA}},
], ids=["json_schema", "guided_json", "guided_json_text", "structured_outputs"])
def test_vllm_answers_json_valid_against_each_kind_of_schema(fake: FakeLLM, extra: dict[str, Any]) -> None:
    fake.control(dialect="vllm")
    jsonschema.validate(json.loads(content_of(answer(fake, **extra))), SCHEMA)


def test_vllm_reasoning_model_sends_reasoning_under_both_names_beside_the_content(fake: FakeLLM) -> None:
    fake.control(dialect="vllm")
    message = answer(fake, model="deepseek-r1")["choices"][0]["message"]
    assert message["reasoning"] == message["reasoning_content"] == THINKING
    assert message["content"] == ANSWER and "Thinking" not in message["content"]
    assert "reasoning" not in answer(fake)["choices"][0]["message"]  # ordinary models do not reason


def test_vllm_streams_reasoning_deltas_before_content_deltas_and_counts_both(fake: FakeLLM) -> None:
    fake.control(dialect="vllm")
    chunks = post(fake, model="qwq-32b", **STREAM_USAGE)[1]
    kinds = ["content" if "content" in delta else "reasoning" for delta in deltas(chunks)]
    assert kinds == ["reasoning"] * 6 + ["content"] * 20
    thinking = "".join(delta["reasoning"] for delta in deltas(chunks) if "reasoning" in delta)
    assert thinking == THINKING
    assert "".join(delta.get("content", "") for delta in deltas(chunks)) == ANSWER
    assert usage_chunks(chunks) == [{"prompt_tokens": 6, "completion_tokens": 26, "total_tokens": 32}]


def test_vllm_latest_ignores_guided_json_and_names_reasoning_only_reasoning(fake: FakeLLM) -> None:
    fake.control(dialect="vllm-latest")
    assert content_of(answer(fake, guided_json=SCHEMA)) == ANSWER
    message = answer(fake, model="deepseek-r1", structured_outputs={"json": SCHEMA})["choices"][0]["message"]
    assert message["reasoning"] == THINKING and "reasoning_content" not in message
    jsonschema.validate(json.loads(message["content"]), SCHEMA)


# --- ollama -------------------------------------------------------------------------------------
def test_ollama_accepts_json_schema_and_streams_reasoning_then_content_with_usage(fake: FakeLLM) -> None:
    fake.control(dialect="ollama")
    jsonschema.validate(json.loads(content_of(answer(fake, response_format=JSON_SCHEMA_FORMAT))), SCHEMA)
    chunks = post(fake, model="qwen3", **STREAM_USAGE)[1]
    assert [next(iter(delta)) for delta in deltas(chunks)] == ["reasoning"] * 6 + ["content"] * 20
    assert answer(fake, model="qwen3")["choices"][0]["message"]["reasoning"] == THINKING
    assert len(usage_chunks(chunks)) == 1


def test_old_ollama_ignores_json_schema_but_honours_json_object(fake: FakeLLM) -> None:
    fake.control(dialect="ollama-old")
    free_text = content_of(answer(fake, response_format=JSON_SCHEMA_FORMAT))
    assert free_text == ANSWER
    with pytest.raises(json.JSONDecodeError):
        json.loads(free_text)
    assert json.loads(content_of(answer(fake, response_format={"type": "json_object"}))) == {"text": ANSWER}


def test_old_ollama_sends_no_usage_when_streaming_even_when_asked(fake: FakeLLM) -> None:
    fake.control(dialect="ollama-old")
    chunks = post(fake, **STREAM_USAGE)[1]
    assert usage_chunks(chunks) == [] and all("usage" not in chunk for chunk in chunks)
    assert "".join(delta["content"] for delta in deltas(chunks)) == ANSWER


# --- llamacpp -----------------------------------------------------------------------------------
def test_llamacpp_refuses_json_schema_with_a_500_server_error(fake: FakeLLM) -> None:
    fake.control(dialect="llamacpp")
    assert post(fake, response_format=JSON_SCHEMA_FORMAT) == (500, {"error": {
        "code": 500, "message": 'response_format type must be one of "text" or "json_object", but got: json_schema',
        "type": "server_error"}})


def test_llamacpp_honours_a_schema_inside_json_object_and_without_it_any_json(fake: FakeLLM) -> None:
    fake.control(dialect="llamacpp")
    constrained = json.loads(content_of(answer(fake, response_format={"type": "json_object", "schema": SCHEMA})))
    jsonschema.validate(constrained, SCHEMA)
    unconstrained = json.loads(content_of(answer(fake, response_format={"type": "json_object"})))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(unconstrained, SCHEMA)


def test_llamacpp_streams_without_usage_and_serves_any_model_name(fake: FakeLLM) -> None:
    fake.control(dialect="llamacpp")
    status, chunks = post(fake, model="whatever-is-loaded", **STREAM_USAGE)
    assert status == 200 and usage_chunks(chunks) == []
    message = answer(fake, model="deepseek-r1-distill")["choices"][0]["message"]
    assert message["reasoning_content"] == THINKING and "reasoning" not in message and message["content"] == ANSWER


# --- lmstudio-old -------------------------------------------------------------------------------
def test_old_lmstudio_takes_only_json_schema_and_says_so_in_a_bare_string(fake: FakeLLM) -> None:
    fake.control(dialect="lmstudio-old")
    jsonschema.validate(json.loads(content_of(answer(fake, response_format=JSON_SCHEMA_FORMAT))), SCHEMA)
    assert post(fake, response_format={"type": "json_object"}) == (
        400, {"error": "'response_format.type' must be 'json_schema'"})


def test_old_lmstudio_ignores_stream_options_and_sends_no_usage(fake: FakeLLM) -> None:
    fake.control(dialect="lmstudio-old")
    status, chunks = post(fake, **STREAM_USAGE)
    assert status == 200 and usage_chunks(chunks) == []


# --- strict-422 ---------------------------------------------------------------------------------
@pytest.mark.parametrize("response_format", [JSON_SCHEMA_FORMAT, {"type": "json_object"}])
def test_strict_server_refuses_any_response_format_with_fastapis_422(fake: FakeLLM, response_format: dict[str, Any]) -> None:
    fake.control(dialect="strict-422")
    assert post(fake, response_format=response_format) == (422, {"detail": [{
        "type": "extra_forbidden", "loc": ["body", "response_format"], "msg": "Extra inputs are not permitted",
        "input": response_format}]})
    assert content_of(answer(fake)) == ANSWER  # the same request without it, instructions in the prompt, runs


# --- knobs and switches -------------------------------------------------------------------------
def test_the_older_knobs_still_apply_on_top_of_a_dialect(fake: FakeLLM) -> None:
    fake.control(dialect="vllm", reject_stream_options=True)
    assert post(fake, **STREAM_USAGE)[0] == 400
    fake.control(dialect="openai", reject_stream_options=False, no_stream_usage=True)
    assert usage_chunks(post(fake, **STREAM_USAGE)[1]) == []
    fake.control(dialect="ollama", reasoning_models=["fake-model"])
    assert answer(fake, model="fake-model")["choices"][0]["message"]["reasoning"] == THINKING


def test_control_refuses_an_unknown_dialect(fake: FakeLLM) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        fake.control(dialect="tgi")
    assert refused.value.code == 400
    assert "unknown dialect tgi" in json.loads(refused.value.read())["error"]


def test_the_command_line_dialect_survives_a_reset() -> None:
    fake = FakeLLM("--dialect", "llamacpp")
    try:
        fake.reset()
        assert post(fake, response_format=JSON_SCHEMA_FORMAT)[0] == 500
    finally:
        fake.stop()


def test_the_request_log_keeps_each_prompt_with_its_arrival_time_only_while_on(fake: FakeLLM) -> None:
    post(fake, messages=[{"role": "user", "content": "before"}])
    fake.control(log_requests=True)
    started = time.time()
    post(fake, messages=[{"role": "user", "content": "first"}])
    post(fake)
    logged = fake.requests_logged()
    assert [prompt for _, prompt in logged] == ["first", PROMPT]
    assert all(started <= at <= time.time() for at, _ in logged)
    fake.reset()
    assert fake.requests_logged() == []
