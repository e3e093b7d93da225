"""llm/client.py over real HTTP to the fake server (and to sockets that misbehave). No mocks."""
import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from fakellm.server import reply_text
from llm import client, tokens
from tests.fake_llm import ROOT, FakeLLM, free_port

pytestmark = pytest.mark.usefixtures("close_llm_clients")

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me about tides"}]
Config = Callable[..., client.EndpointConfig]


async def ask(config: client.EndpointConfig, **kwargs: Any) -> client.Completion:
    kwargs.setdefault("model", "gpt-4o-mini")
    kwargs.setdefault("messages", MESSAGES)
    return await client.complete(config, **kwargs)


async def fails(config: client.EndpointConfig, **kwargs: Any) -> client.LLMError:
    with pytest.raises(client.LLMError) as caught:
        await ask(config, **kwargs)
    return caught.value


# --- answers ------------------------------------------------------------------------------------
async def test_a_plain_completion_returns_text_and_server_usage(fake_llm: FakeLLM, config_for: Config) -> None:
    answer = await ask(config_for())
    assert answer.text == reply_text("Tell me about tides", 20)
    assert answer.completion_tokens == 20
    assert answer.prompt_tokens == 6  # the fake counts words of all messages
    assert answer.tokens_estimated is False
    assert answer.finish_reason == "stop"
    assert answer.ttft_ms is None
    assert [a["ok"] for a in answer.attempts] == [True]


async def test_a_streamed_completion_returns_the_same_text_usage_and_deltas(fake_llm: FakeLLM, config_for: Config) -> None:
    deltas: list[str] = []
    answer = await ask(config_for(), stream=True, on_delta=deltas.append)
    assert answer.text == reply_text("Tell me about tides", 20)
    assert "".join(deltas) == answer.text
    assert len(deltas) == 20
    assert (answer.prompt_tokens, answer.completion_tokens, answer.tokens_estimated) == (6, 20, False)
    assert answer.ttft_ms is not None
    assert fake_llm.stats()["recent"][-1]["stream_options"] == {"include_usage": True}


async def test_params_reach_the_server_and_length_is_the_finish_reason(fake_llm: FakeLLM, config_for: Config) -> None:
    answer = await ask(config_for(), params={"max_tokens": 8, "temperature": 0.2})
    assert answer.completion_tokens == 8
    assert answer.finish_reason == "length"
    sent = fake_llm.stats()["recent"][-1]
    assert (sent["max_tokens"], sent["temperature"]) == (8, 0.2)


# --- retries ------------------------------------------------------------------------------------
async def test_a_429_with_retry_after_is_retried_after_the_servers_delay(fake_llm: FakeLLM, config_for: Config) -> None:
    fake_llm.fail_next({"status": 429, "retry_after": 0.2})
    answer = await ask(config_for())
    assert answer.text == reply_text("Tell me about tides", 20)
    first, second = answer.attempts
    assert first["ok"] is False and first["http_status"] == 429 and first["kind"] == "rate_limited"
    assert first["retry_in_ms"] == 200
    assert second["ok"] is True
    assert fake_llm.stats()["chat_requests"] == 2


async def test_retry_after_ms_wins_over_retry_after(fake_llm: FakeLLM, config_for: Config) -> None:
    fake_llm.fail_next({"status": 429, "retry_after_ms": 30, "retry_after": 5})
    answer = await ask(config_for())
    assert answer.attempts[0]["retry_in_ms"] == 30


async def test_500s_are_retried_and_every_attempt_is_recorded(fake_llm: FakeLLM, config_for: Config) -> None:
    fake_llm.fail_next({"status": 500, "retry_after_ms": 1}, {"status": 503, "retry_after_ms": 1})
    answer = await ask(config_for(), stream=True)
    assert [(a["attempt"], a["ok"], a.get("http_status")) for a in answer.attempts] == [
        (1, False, 500), (2, False, 503), (3, True, None)]
    assert answer.text == reply_text("Tell me about tides", 20)


async def test_retries_stop_at_the_endpoints_max_retries(fake_llm: FakeLLM, config_for: Config) -> None:
    fake_llm.fail_next(*[{"status": 500, "retry_after_ms": 1}] * 6)
    error = await fails(config_for(max_retries=2))
    assert error.retryable is True
    assert len(error.attempts) == 3
    assert "gave up after 3 attempts" in str(error)
    assert fake_llm.stats()["chat_requests"] == 3


async def test_no_retries_when_max_retries_is_zero(fake_llm: FakeLLM, config_for: Config) -> None:
    fake_llm.fail_next({"status": 429, "retry_after_ms": 1})
    error = await fails(config_for(max_retries=0))
    assert error.http_status == 429
    assert fake_llm.stats()["chat_requests"] == 1


async def test_a_stream_cut_midway_is_retried_and_the_partial_text_is_dropped(fake_llm: FakeLLM, config_for: Config) -> None:
    fake_llm.fail_next({"cut_stream_after": 5})
    deltas: list[str] = []
    answer = await ask(config_for(), stream=True, on_delta=deltas.append, on_retry=deltas.clear)
    assert answer.text == reply_text("Tell me about tides", 20)
    assert "".join(deltas) == answer.text
    assert "cut off" in answer.attempts[0]["error"]


# --- errors a person understands ----------------------------------------------------------------
async def test_a_hanging_server_is_reported_as_a_timeout(fake_llm: FakeLLM, config_for: Config) -> None:
    fake_llm.fail_next({"hang": True})
    error = await fails(config_for(timeout=0.3, max_retries=0))
    assert error.kind == "timeout"
    assert str(error) == "the endpoint did not answer within 0.3 s"


async def test_a_wrong_api_key_fails_at_once(fake_llm: FakeLLM, config_for: Config) -> None:
    fake_llm.control(api_key="sk-right-key-1234")
    error = await fails(config_for(api_key="sk-wrong-key-5678", max_retries=3))
    assert str(error).startswith("the endpoint refused the API key")
    assert error.kind == "auth" and error.retryable is False
    assert len(error.attempts) == 1


async def test_an_unknown_model_fails_at_once(fake_llm: FakeLLM, config_for: Config) -> None:
    error = await fails(config_for(), model="x")
    assert str(error).startswith("model 'x' does not exist on this endpoint")
    assert error.retryable is False
    assert fake_llm.stats()["chat_requests"] == 1


async def test_a_bad_request_fails_at_once_with_the_servers_message(fake_llm: FakeLLM, config_for: Config) -> None:
    fake_llm.fail_next({"status": 400, "message": "temperature must be at most 2"})
    error = await fails(config_for())
    assert "the endpoint rejected the request" in str(error)
    assert "temperature must be at most 2" in str(error)
    assert len(error.attempts) == 1


async def test_a_refused_connection_is_classified(config_for: Config) -> None:
    error = await fails(config_for(base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=0))
    assert error.kind == "refused"
    assert "refused" in str(error)


async def test_an_unresolvable_host_is_classified_as_dns(config_for: Config) -> None:
    error = await fails(config_for(base_url="http://no-such-host.invalid/v1", max_retries=0))
    assert error.kind == "dns"


# --- servers that differ ------------------------------------------------------------------------
async def test_no_usage_while_streaming_is_estimated_locally_and_marked(fake_llm: FakeLLM, config_for: Config) -> None:
    fake_llm.control(no_stream_usage=True)
    answer = await ask(config_for(), stream=True)
    assert answer.tokens_estimated is True
    assert answer.completion_tokens == tokens.count(answer.text, "gpt-4o-mini")
    assert answer.prompt_tokens == tokens.count_messages(MESSAGES, "gpt-4o-mini")
    assert answer.completion_tokens > 0 and answer.prompt_tokens > 0


async def test_a_server_that_rejects_stream_options_is_adapted_to(fake_llm: FakeLLM, config_for: Config) -> None:
    fake_llm.control(reject_stream_options=True)
    config = config_for()
    first = await ask(config, stream=True)
    assert first.text == reply_text("Tell me about tides", 20)
    assert first.attempts[0].get("adapted") == {"stream_options": False}
    assert first.tokens_estimated is True
    second = await ask(config, stream=True)
    assert len(second.attempts) == 1  # learned: no stream_options any more
    assert "stream_options" not in fake_llm.stats()["recent"][-1]


async def test_a_server_that_rejects_response_format_is_adapted_to(fake_llm: FakeLLM, config_for: Config) -> None:
    fake_llm.control(reject_response_format=True)
    config = config_for()
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    answer = await ask(config, json_schema=schema)
    # The fake follows the schema given in the prompt, as an instruction-following model would.
    assert json.loads(answer.text) == {"title": reply_text("Tell me about tides", 20)}
    assert [a.get("adapted") for a in answer.attempts] == [
        {"structured_output": "json_object_schema"}, {"structured_output": "json_object"},
        {"structured_output": "prompt"}, None]
    assert answer.attempts[-1]["sent_as"] == {"structured_output": "prompt"}
    recent = fake_llm.stats()["recent"]
    sent = [body.get("response_format", {}).get("type") for body in recent]
    assert sent == ["json_schema", "json_object", "json_object", None]
    assert recent[1]["response_format"]["schema"] == schema
    # Without a response_format the schema travels in a system message.
    assert recent[-1]["messages"][-1]["role"] == "system" and '"title"' in recent[-1]["messages"][-1]["content"]
    assert client.capabilities(config, "gpt-4o-mini").structured_output == "prompt"


async def test_json_schema_is_sent_as_response_format(fake_llm: FakeLLM, config_for: Config) -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    await ask(config_for(), json_schema=schema)
    assert fake_llm.stats()["recent"][-1]["response_format"]["json_schema"]["schema"] == schema


# --- malformed answers --------------------------------------------------------------------------
@pytest.mark.parametrize(("fault", "stream", "says"), [
    ({"invalid_json": True}, False, "the endpoint sent invalid JSON"),
    ({"html": True}, False, "answered HTTP 200 with text/html instead of a JSON chat completion: '<html>"),
    ({"html": True}, True, "answered a streaming request with text/html instead of an event stream"),
    ({"no_choices": True}, False, "has no choices"),
    ({"no_choices": True}, True, "the stream ended after 3 chunks without any text or finish reason"),
    ({"invalid_json": True}, True, "an event was not valid JSON"),
    ({"cut_stream_after": 4}, True, "the stream was cut off after 5 chunks: the server closed the connection"),
])
async def test_malformed_answers_say_what_the_server_did(
    fake_llm: FakeLLM, config_for: Config, fault: dict[str, Any], stream: bool, says: str
) -> None:
    fake_llm.fail_next(fault)
    error = await fails(config_for(max_retries=0), stream=stream)
    assert says in str(error)
    assert error.kind == "bad_response"


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """Accepts TCP connections, reads, and never answers."""
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(3600)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/v1"
    server.close()


async def test_a_server_that_accepts_and_never_answers_times_out_clearly(silent_server: str, config_for: Config) -> None:
    error = await fails(config_for(base_url=silent_server, timeout=0.3, max_retries=1))
    assert error.kind == "timeout"
    assert str(error) == "the endpoint did not answer within 0.3 s (gave up after 2 attempts)"
    assert len(error.attempts) == 2


# --- limits and pooling -------------------------------------------------------------------------
async def test_concurrency_is_limited_per_endpoint(fake_llm: FakeLLM, config_for: Config) -> None:
    fake_llm.control(latency_ms=50)
    config = config_for(max_concurrency=2)
    answers = await asyncio.gather(*(ask(config, messages=[{"role": "user", "content": f"q{i}"}]) for i in range(10)))
    assert len({a.text for a in answers}) == 10
    stats = fake_llm.stats()
    assert stats["chat_requests"] == 10
    assert stats["inflight_max"] == 2


async def test_one_pooled_client_serves_every_call_to_an_endpoint(fake_llm: FakeLLM, config_for: Config) -> None:
    config = config_for()
    for _ in range(5):
        await ask(config)
    assert fake_llm.stats()["connections"] == 1


async def test_models_are_listed(fake_llm: FakeLLM, config_for: Config) -> None:
    assert await client.list_models(config_for()) == ["fake-model", "gpt-4o-mini"]


def test_the_tokenizer_counts_with_no_network() -> None:
    """bpe-openai ships its encodings: counting works in a process where every socket fails."""
    script = textwrap.dedent("""
        import socket
        def refuse(*args, **kwargs):
            raise OSError("network disabled for this test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from llm import tokens
        print(tokens.count("hello world", "gpt-4o-mini"), tokens.count("hello world", "gpt-4"),
              tokens.encoding_name("gpt-4o-mini"), tokens.encoding_name("gpt-4"))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PATH": "", "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "2", "o200k_base", "cl100k_base"]


async def test_an_interactive_call_gives_up_at_once_when_the_connection_is_refused(config_for: Config) -> None:
    """The LLM Tester and "Try it" stream through stream_completion: no backoff a person has to sit through."""
    from llm.streaming import stream_completion

    config = config_for(base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=3)
    started = asyncio.get_running_loop().time()
    items = [item async for item in stream_completion(config, model="m", messages=MESSAGES)]
    assert [kind for kind, _ in items] == ["error"]  # no "reset": nothing was retried
    assert items[0][1]["kind"] == "refused"
    assert asyncio.get_running_loop().time() - started < 0.5


async def test_a_run_still_retries_a_refused_connection(config_for: Config) -> None:
    error = await fails(config_for(base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=1))
    assert error.kind == "refused" and len(error.attempts) == 2


async def test_an_interactive_call_still_retries_a_server_error(fake_llm: FakeLLM, config_for: Config) -> None:
    fake_llm.fail_next({"status": 500, "retry_after_ms": 1})
    answer = await ask(config_for(max_retries=2), interactive=True)
    assert [a["ok"] for a in answer.attempts] == [False, True]
