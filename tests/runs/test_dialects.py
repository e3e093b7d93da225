"""Each server dialect of the fake (fakellm/dialects.py, docs/compatibility.md) runs a structured,
a streamed and a reasoning workflow to success, with what the client had to adapt stored."""
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from llm import client
from llm.models import Capability
from runs.engine import execute_run, ledger
from runs.models import Response, Run
from runs.services import run_start
from tests.factories import make_block, make_endpoint, make_payload, make_workflow
from tests.fake_llm import FakeLLM

pytestmark = pytest.mark.django_db(transaction=True)

SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}, "points": {"type": "integer"}},
          "required": ["title", "points"]}
# dialect: (structured output it ends up with, usage in streams, reasoning model, where its reasoning comes)
DIALECTS: dict[str, tuple[str, bool, str, str]] = {
    "openai": ("json_schema", True, "o4-mini", ""),
    "vllm": ("json_schema", True, "deepseek-r1", "reasoning_content"),
    "vllm-latest": ("json_schema", True, "deepseek-r1", "reasoning"),
    "ollama": ("json_schema", True, "qwen3", "reasoning"),
    "ollama-old": ("json_object_schema", False, "gpt-4o-mini", ""),
    "llamacpp": ("json_object_schema", False, "deepseek-r1-distill", "reasoning_content"),
    "lmstudio-old": ("json_schema", False, "gpt-4o-mini", ""),
    "strict-422": ("prompt", True, "gpt-4o-mini", ""),
}


@pytest.fixture(params=list(DIALECTS))
def dialect(request: pytest.FixtureRequest, fake_llm: FakeLLM) -> str:
    fake_llm.control(dialect=request.param)
    return request.param


@sync_to_async
def start(base_url: str, **payload_fields: Any) -> Run:
    endpoint = make_endpoint(base_url)
    first = make_payload("first", endpoint, [("user", make_block("f", "Outline {{ topic }}"))], **payload_fields)
    second = make_payload("second", endpoint, [("user", make_block("s", "Write about {{ first }}"))])
    workflow = make_workflow("wf", [("first", first), ("second", second)])
    return run_start(workflow=workflow, inputs={"topic": "tides"}, user=None)


async def first_response(run: Run) -> Response:
    return await Response.objects.aget(run_id=run.pk, index=0)


def another_process() -> None:
    client._learned.clear()
    ledger.endpoint_configs_forget()


async def test_a_structured_workflow(fake_llm: FakeLLM, dialect: str) -> None:
    expected = DIALECTS[dialect][0]
    run = await start(fake_llm.base_url, json_schema=SCHEMA, structured_retries=0)
    assert await execute_run(run.pk) == "succeeded", (await first_response(run)).error
    first = await first_response(run)
    assert set(first.output_json) == {"title", "points"}
    assert first.attempts[-1].get("sent_as", {}).get("structured_output", "json_schema") == expected
    stored = await Capability.objects.filter(model="gpt-4o-mini").afirst()
    assert (stored.structured_output if stored else "json_schema") == expected
    # Another process sends the right dialect first time.
    another_process()
    sent_before = fake_llm.stats()["chat_requests"]
    again = await sync_to_async(lambda: run_start(workflow=run.workflow, inputs={"topic": "moon"}, user=None))()
    assert await execute_run(again.pk) == "succeeded"
    assert fake_llm.stats()["chat_requests"] == sent_before + 2


async def test_a_streamed_workflow(fake_llm: FakeLLM, dialect: str) -> None:
    usage_in_streams = DIALECTS[dialect][1]
    run = await start(fake_llm.base_url, stream=True)
    assert await execute_run(run.pk) == "succeeded"
    first = await first_response(run)
    assert first.output and first.ttft_ms is not None
    assert first.tokens_estimated is not usage_in_streams
    stored = await Capability.objects.filter(model="gpt-4o-mini").afirst()
    assert (stored.stream_usage if stored else True) is usage_in_streams


async def test_a_reasoning_workflow(fake_llm: FakeLLM, dialect: str) -> None:
    _, _, model, field = DIALECTS[dialect]
    # max_tokens and a temperature, which OpenAI's reasoning models refuse.
    run = await start(fake_llm.base_url, model=model, max_tokens=200, temperature=0.2, stream=dialect != "openai")
    assert await execute_run(run.pk) == "succeeded", (await first_response(run)).error
    first = await first_response(run)
    second = await Response.objects.aget(run_id=run.pk, index=1)
    assert first.output
    assert "Thinking about" not in first.output and "Thinking about" not in second.messages[0]["content"]
    if field:
        assert first.reasoning == "Thinking about: Outline tides"
        assert (await Capability.objects.aget(model=model)).reasoning_field == field
    else:
        assert first.reasoning == ""
    if dialect == "openai":
        assert first.reasoning_tokens == 8 and first.cached_tokens == 0
        stored = await Capability.objects.aget(model=model)
        assert (stored.token_limit_param, stored.temperature) == ("max_completion_tokens", False)
        sent = fake_llm.stats()["recent"][-2]  # the first step's accepted request
        assert sent["max_completion_tokens"] == 200 and "max_tokens" not in sent and "temperature" not in sent
