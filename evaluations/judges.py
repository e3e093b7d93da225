"""The default judges: ordinary workflows of this project (a block, a payload with structured output,
a one-step workflow), so a judge's prompt is visible, editable and versioned like any other, and
each verdict names the release of the judge that gave it (its run's release) and what it cost."""
from __future__ import annotations

from typing import Any

from django.db import transaction

from blocks.models import Block
from blocks.services import block_create
from llm.models import Endpoint
from payloads.models import Payload
from payloads.services import payload_create
from workflows.models import Workflow
from workflows.services import workflow_create

VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"pass": {"type": "boolean"}, "score": {"type": "number", "minimum": 0, "maximum": 1},
                   "reason": {"type": "string"}},
    "required": ["pass", "score", "reason"],
    "additionalProperties": False,
}
JUDGE_INPUTS = [{"name": "output"}, {"name": "rubric", "default": ""}, {"name": "expected", "default": ""},
                {"name": "input", "default": ""}]
PROMPTS = {
    "judge-rubric": (
        "You grade an answer against a rubric. Be strict and literal.\n\n"
        "Rubric:\n{{ rubric }}\n\nThe case's inputs (JSON):\n{{ input }}\n\nThe answer:\n<<<\n{{ output }}\n>>>\n\n"
        "Reply with JSON only: pass (true when the answer meets the rubric), score (0 to 1: how well it meets "
        "it) and reason (one sentence)."),
    "judge-factuality": (
        "You compare an answer with a reference answer for factual agreement, ignoring style and length.\n\n"
        "Reference:\n<<<\n{{ rubric }}\n>>>\n\nThe case's inputs (JSON):\n{{ input }}\n\n"
        "The answer:\n<<<\n{{ output }}\n>>>\n\n"
        "Reply with JSON only: pass (true when the answer states nothing that contradicts the reference and "
        "keeps its facts), score (0 to 1) and reason (one sentence naming any disagreement)."),
}


@transaction.atomic
def judges_seed(*, endpoint: Endpoint, model: str = "", user: Any = None) -> list[Workflow]:
    """Create the default judge workflows that do not exist yet (by name); existing ones are left as edited."""
    made = []
    for name, prompt in PROMPTS.items():
        if Workflow.objects.filter(name=name).exists():
            continue
        block = Block.objects.filter(name=name).first() or block_create(
            name=name, content=prompt, description="The prompt of a default judge (evaluations).", user=user)
        payload = Payload.objects.filter(name=name).first() or payload_create(
            name=name, endpoint=endpoint, blocks=[{"block": block, "role": "user"}], user=user, model=model,
            temperature=0.0, json_schema=VERDICT_SCHEMA, structured_retries=2,
            description="A default judge: answers {pass, score, reason}.")
        made.append(workflow_create(
            name=name, description="A judge for llm-rubric / factuality assertions: its output is {pass, score, reason}.",
            inputs=JUDGE_INPUTS, steps=[{"payload": payload, "output_key": "verdict"}], user=user))
    return made
