"""`manage.py fake_llm` as `make run` starts it: readable, deterministic answers over real HTTP."""
import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from asgiref.sync import sync_to_async

from runs.engine import execute_run
from runs.models import Response
from runs.services import run_start
from tests.fake_llm import ROOT, free_port, wait_for_http
from workflows.models import Workflow

OUTLINE_PROMPT = "Write a short outline about ocean tides."


@pytest.fixture(scope="module")
def demo_llm() -> Iterator[str]:
    """The command with its default options, as the Makefile's `run` target starts it."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "manage.py", "fake_llm", "--port", str(port)],
                               cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(10)


def chat(base_url: str, prompt: str, **fields: Any) -> dict[str, Any]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}], **fields}
    request = urllib.request.Request(f"{base_url}/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def answer(base_url: str, prompt: str, **fields: Any) -> str:
    return chat(base_url, prompt, **fields)["choices"][0]["message"]["content"]


def streamed_deltas(base_url: str, prompt: str) -> list[str]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}], "stream": True}
    request = urllib.request.Request(f"{base_url}/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        events = [line[len(b"data: "):] for line in response.read().splitlines() if line.startswith(b"data: ")]
    chunks = [json.loads(event) for event in events if event != b"[DONE]"]
    return [c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]]


def test_the_same_request_gets_the_same_readable_answer(demo_llm):
    prompt = "Write a playful paragraph about cats and their naps."
    first = answer(demo_llm, prompt)
    assert first == answer(demo_llm, prompt)
    assert first != answer(demo_llm, "Write a playful paragraph about dogs and their walks.")
    assert "echo:" not in first and not re.search(r"#[0-9a-f]{10}|\bw\d+\b", first)
    sentences = re.findall(r"[A-Z][^.]*\.", first)
    assert len(sentences) >= 2 and " ".join(sentences) == first
    assert "cats" in first.lower() and "naps" in first.lower()


def test_an_outline_is_asked_for_and_numbered_or_bulleted_lines_come_back(demo_llm):
    lines = answer(demo_llm, OUTLINE_PROMPT).splitlines()
    assert len(lines) >= 3 and all(re.match(r"\d+\. \S", line) for line in lines)
    assert any("ocean tides" in line for line in lines)
    bullets = answer(demo_llm, "Give me a bulleted list of tips for learning Rust.").splitlines()
    assert len(bullets) >= 3 and all(line.startswith("- ") for line in bullets)


def test_a_summary_is_one_sentence_shorter_than_what_it_summarises(demo_llm):
    paragraph = answer(demo_llm, "Expand this outline about ocean tides into one paragraph:\n"
                       + answer(demo_llm, OUTLINE_PROMPT), max_tokens=400)
    summary = answer(demo_llm, f"Summarize this paragraph in one sentence:\n{paragraph}")
    assert summary.count(".") == 1 and summary.endswith(".")
    assert len(summary.split()) < len(paragraph.split())
    assert "ocean tides" in summary


def test_a_json_schema_request_gets_json_valid_against_it(demo_llm):
    schema = {"type": "object", "required": ["title", "points", "count"], "properties": {
        "title": {"type": "string"}, "points": {"type": "array", "items": {"type": "string"}},
        "count": {"type": "integer"}, "tone": {"enum": ["calm", "loud"]}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "article", "schema": schema}}
    text = answer(demo_llm, OUTLINE_PROMPT, response_format=response_format)
    jsonschema.validate(json.loads(text), schema)
    assert "ocean tides" in json.loads(text)["title"]
    assert isinstance(json.loads(answer(demo_llm, "Describe tides as JSON.",
                                        response_format={"type": "json_object"})), dict)


def test_streaming_sends_the_same_answer_word_by_word(demo_llm):
    deltas = [d for d in streamed_deltas(demo_llm, OUTLINE_PROMPT) if d]
    whole = answer(demo_llm, OUTLINE_PROMPT)
    assert "".join(deltas) == whole
    assert len(deltas) == len(whole.split()) > 10


def test_max_tokens_cuts_the_answer_with_finish_reason_length(demo_llm):
    reply = chat(demo_llm, OUTLINE_PROMPT, max_tokens=4)
    assert reply["choices"][0]["finish_reason"] == "length"
    assert len(reply["choices"][0]["message"]["content"].split()) == 4 == reply["usage"]["completion_tokens"]


@pytest.mark.django_db(transaction=True)
async def test_the_seeded_demo_reads_well_end_to_end(seed_demo, demo_llm):
    def start() -> int:
        seed_demo("--fake-llm-url", demo_llm)
        return run_start(workflow=Workflow.objects.get(name="Article"), inputs={"topic": "volcanoes"}, user=None).pk

    run_id = await sync_to_async(start)()
    assert await execute_run(run_id) == "succeeded"
    outline, paragraph, summary = [r.output async for r in Response.objects.filter(run_id=run_id).order_by("index")]
    assert outline.startswith("1. ") and "volcanoes" in outline
    assert len(re.findall(r"\.(?:\s|$)", paragraph)) >= 2 and "\n" not in paragraph
    assert summary.count(".") == 1 and "volcanoes" in summary
