"""A run of a workflow with control flow (issue 22), written directly: two steps side by side (one
skipped by its `when`), then a map over the first one's list, some of whose items are recorded."""
from __future__ import annotations

from typing import Any

from django.utils import timezone

from llm.models import Endpoint
from runs.models import Response, Run
from tests.factories import make_block, make_payload, make_run, make_workflow
from workflows.models import Step, Workflow

CLAIMS = ["The moon pulls the sea.", "Tides come twice a day.", "Barrages hold water back."]


def make_flow_workflow(endpoint: Endpoint, name: str = "claims") -> Workflow:
    """claims (a list) and translated (skipped unless language != "en") side by side, then checked: one call per claim."""
    claims = make_payload(f"{name}-list", endpoint, [("user", make_block(f"{name}-list", "List claims on {{ topic }}."))])
    translate = make_payload(f"{name}-translate", endpoint,
                             [("user", make_block(f"{name}-translate", "Translate {{ topic }} to {{ language }}."))])
    check = make_payload(f"{name}-check", endpoint, [("user", make_block(f"{name}-check", "Is it true? {{ claim }}"))])
    workflow = make_workflow(name, [("claims", claims), ("translated", translate), ("checked", check)],
                             inputs=[{"name": "topic"}, {"name": "language", "default": "en"}])
    Step.objects.filter(workflow=workflow, output_key="translated").update(when='language != "en"', default="(English)")
    Step.objects.filter(workflow=workflow, output_key="checked").update(for_each="claims", item_as="claim")
    return workflow


def make_flow_run(workflow: Workflow, *, items: dict[int, str], status: str = "running",
                  map_done: bool = False, **fields: Any) -> Run:
    """The run with claims answered, translated skipped and the map's items as `items` (item -> status)."""
    run = make_run(workflow=workflow, workflow_name=workflow.name, status=status, started_at=timezone.now(),
                   step_count=3, next_step=2, inputs={"topic": "tides", "language": "en"},
                   **fields)
    common = {"run": run, "endpoint_name": "fake", "model": "gpt-4o-mini"}
    Response.objects.create(**common, index=0, output_key="claims", payload_name="claims-list", status="succeeded",
                            output=str(CLAIMS).replace("'", '"'), output_json=CLAIMS, prompt_tokens=12,
                            completion_tokens=30, messages=[{"role": "user", "content": "List claims on tides."}])
    Response.objects.create(**common, index=1, output_key="translated", payload_name="claims-translate",
                            status="skipped", output="(English)")
    for item, item_status in items.items():
        Response.objects.create(
            **common, index=2, item=item, item_value=CLAIMS[item - 1], output_key="checked",
            payload_name="claims-check", status=item_status, prompt_tokens=8, completion_tokens=2,
            output="true" if item_status == "succeeded" else "", error="" if item_status == "succeeded" else "HTTP 500",
            messages=[{"role": "user", "content": f"Is it true? {CLAIMS[item - 1]}"}])
    if map_done:
        outputs = ["true" if items.get(n) == "succeeded" else None for n in range(1, len(CLAIMS) + 1)]
        Response.objects.create(**common, index=2, output_key="checked", payload_name="claims-check",
                                status="succeeded", output=str(outputs), output_json=outputs)
    return run
