from dataclasses import dataclass

import pytest

from blocks.models import Block
from llm.models import Endpoint
from payloads.models import Payload
from runs.models import Response, Run, RunStatus
from tests.factories import make_block, make_endpoint, make_payload, make_release, make_workflow
from workflows.models import Workflow


@dataclass
class Demo:
    endpoint: Endpoint
    system: Block
    task: Block
    payload: Payload
    summary: Payload
    workflow: Workflow
    run: Run


@pytest.fixture
def demo(db) -> Demo:  # type: ignore[no-untyped-def]
    """A small builder setup: two payloads in a 2-step workflow, and one finished run with a response."""
    endpoint = make_endpoint(name="local")
    system = make_block("system", "You are terse.")
    task = make_block("task", "Write about {{ topic }} for {{ audience }}.")
    summary_block = make_block("summary-task", "Summarize:\n{{ previous }}")
    payload = make_payload("outline", endpoint, [("system", system), ("user", task)], stream=True)
    summary = make_payload("summary", endpoint, [("user", summary_block)])
    workflow = make_workflow("article", [("outline", payload), ("summary", summary)],
                             inputs=[{"name": "topic"}, {"name": "audience", "default": "children"}])
    run = Run.objects.create(workflow=workflow, workflow_name=workflow.name, status=RunStatus.SUCCEEDED,
                             inputs={"topic": "tides", "audience": "children"}, release=make_release(workflow),
                             step_count=2, next_step=2, prompt_tokens=30, completion_tokens=40, latency_ms=120,
                             output="done")
    for index, key in enumerate(["outline", "summary"]):
        Response.objects.create(
            run=run, index=index, output_key=key, payload_name=key, endpoint_name="local", model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"rendered prompt {index} <b>"}], output=f"answer {index}",
            prompt_tokens=15, completion_tokens=20, latency_ms=60,
            attempts=[{"ok": True, "latency_ms": 60, "status": 200}], status="succeeded",
        )
    return Demo(endpoint, system, task, payload, summary, workflow, run)
