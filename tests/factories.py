"""Small explicit builders for test data."""
from __future__ import annotations

from typing import Any

from blocks.models import Block
from core.versioning import content_hash
from llm.models import Endpoint
from payloads.models import Payload, PayloadBlock
from releases.models import Release
from releases.services import release_for_run
from runs.models import Run
from workflows.models import Step, Workflow

CHAIN_PROMPTS = [
    "Write a short outline about {{ topic }}.",
    "Expand this outline into a paragraph:\n{{ previous }}",
    "Summarize this paragraph in one sentence:\n{{ previous }}",
]


def make_endpoint(base_url: str = "http://127.0.0.1:9/v1", **fields: Any) -> Endpoint:
    api_key = fields.pop("api_key", "sk-test")
    endpoint = Endpoint(name=fields.pop("name", "fake"), base_url=base_url,
                        default_model=fields.pop("default_model", "gpt-4o-mini"), **fields)
    endpoint.set_api_key(api_key)
    endpoint.full_clean()
    endpoint.save()
    return endpoint


def make_block(name: str, content: str, **fields: Any) -> Block:
    return Block.objects.create(name=name, content=content, **fields)


def make_payload(name: str, endpoint: Endpoint, blocks: list[tuple[str, Block]], **fields: Any) -> Payload:
    payload = Payload.objects.create(name=name, endpoint=endpoint, **fields)
    for position, (role, block) in enumerate(blocks):
        PayloadBlock.objects.create(payload=payload, block=block, role=role, position=position)
    return payload


def make_workflow(name: str, steps: list[tuple[str, Payload]], inputs: list[dict[str, Any]] | None = None) -> Workflow:
    workflow = Workflow.objects.create(name=name, inputs=inputs if inputs is not None else [{"name": "topic"}])
    for position, (output_key, payload) in enumerate(steps):
        Step.objects.create(workflow=workflow, payload=payload, output_key=output_key, position=position)
    return workflow


def make_release(workflow: Workflow, snapshot: dict[str, Any] | None = None) -> Release:
    """The release a run of the workflow's tree points at, as run_start finds or makes it; with
    `snapshot`, a release of that (possibly partial) tree written directly."""
    from workflows.services import workflow_snapshot
    if snapshot is None:
        return Release.objects.get(pk=release_for_run(workflow=workflow, snapshot=workflow_snapshot(workflow)))
    digest = content_hash(snapshot)
    found = Release.objects.filter(workflow=workflow, content_hash=digest).first()
    return found or Release.objects.create(
        workflow=workflow, workflow_name=workflow.name, number=Release.objects.filter(workflow=workflow).count() + 1,
        content_hash=digest, snapshot=snapshot)


def make_run(**fields: Any) -> Run:
    """A run row written directly (no executor), pointing at its workflow's release, or, for a run
    without a workflow, at an empty release."""
    if "release" not in fields and "release_id" not in fields:
        workflow = fields.get("workflow")
        fields["release"] = make_release(workflow) if workflow is not None else Release.objects.get_or_create(
            workflow=None, workflow_name="(none)", number=1, content_hash="0" * 64,
            defaults={"snapshot": {"steps": []}})[0]
    return Run.objects.create(**fields)


def make_chain(endpoint: Endpoint, *, stream: bool = False, name: str = "article", **payload_fields: Any) -> Workflow:
    """The benchmark's 3-step chain: outline, paragraph, summary."""
    keys = ["outline", "paragraph", "summary"]
    steps = []
    for key, prompt in zip(keys, CHAIN_PROMPTS, strict=True):
        block = make_block(f"{name}-{key}", prompt)
        steps.append((key, make_payload(f"{name}-{key}", endpoint, [("user", block)], stream=stream, **payload_fields)))
    return make_workflow(name, steps)


def expected_chain_output(topic: str, tokens: int = 20) -> str:
    from fakellm.server import reply_text

    text = reply_text(CHAIN_PROMPTS[0].replace("{{ topic }}", topic), tokens)
    for prompt in CHAIN_PROMPTS[1:]:
        text = reply_text(prompt.replace("{{ previous }}", text), tokens)
    return text


async def execute_watched(run_id: int, **execute: Any) -> tuple[str | None, list[dict[str, Any]]]:
    """execute_run, with every event the run sent meanwhile (in order): (its final status, the events)."""
    from runs.engine import events, execute_run

    seen: list[dict[str, Any]] = []
    unsubscribe = events.subscribe(run_id, seen.append)
    try:
        return await execute_run(run_id, **execute), seen
    finally:
        unsubscribe()
