"""Reads of the Block Manager."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Max, Q, QuerySet

from blocks.models import Block, BlockVersion
from core.history import History, HistoryLayout, version_history


def block_list(*, search: str = "") -> QuerySet[Block]:
    blocks = Block.objects.order_by("name")
    if search:
        # A variable is found by its name in the template text, so one search box covers all three.
        blocks = blocks.filter(Q(name__icontains=search) | Q(description__icontains=search)
                               | Q(content__icontains=search))
    return blocks


@dataclass(frozen=True)
class UsedBy:
    """What uses a block or payload: payloads that contain it and workflow steps that run them.

    Read through reverse relations (block.payload_blocks, payload.steps), so blocks imports no app above it.
    """

    payloads: list[Any] = field(default_factory=list)
    steps: list[Any] = field(default_factory=list)  # each with .workflow and .payload loaded

    def __bool__(self) -> bool:
        return bool(self.payloads or self.steps)

    @property
    def workflows(self) -> list[Any]:
        unique = {step.workflow.pk: step.workflow for step in self.steps}
        return sorted(unique.values(), key=lambda workflow: workflow.name)

    def as_dict(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "payloads": [{"id": payload.pk, "name": payload.name} for payload in self.payloads],
            "workflows": [{"id": workflow.pk, "name": workflow.name} for workflow in self.workflows],
            "steps": [{"workflow": step.workflow.pk, "workflow_name": step.workflow.name,
                       "output_key": step.output_key, "payload": step.payload.name} for step in self.steps],
        }

    def describe(self) -> str:
        """One sentence naming every user, for an API error or a log line."""
        parts = []
        if self.payloads:
            parts.append("payloads " + ", ".join(f"“{payload.name}”" for payload in self.payloads))
        if self.steps:
            parts.append("workflow steps " + ", ".join(f"“{step.output_key}” of “{step.workflow.name}”"
                                                       for step in self.steps))
        return " and ".join(parts)


def _steps_running(payloads: list[Any]) -> list[Any]:
    steps = [step for payload in payloads for step in payload.steps.all()]
    return sorted(steps, key=lambda step: (step.workflow.name, step.position, step.pk))


def block_used_by(block: Block) -> UsedBy:
    """The payloads that contain the block, and the workflow steps running one of them."""
    uses = block.payload_blocks.select_related("payload").prefetch_related("payload__steps__workflow")
    payloads = sorted({use.payload.pk: use.payload for use in uses}.values(), key=lambda payload: payload.name)
    return UsedBy(payloads=payloads, steps=_steps_running(payloads))


def block_version_numbers(block_ids: list[int]) -> dict[int, int]:
    """Each block's latest version number (what a payload version records)."""
    rows = BlockVersion.objects.filter(block_id__in=block_ids).values("block_id").annotate(latest=Max("number"))
    return {row["block_id"]: row["latest"] for row in rows}


BLOCK_HISTORY = HistoryLayout(texts=("content", "description"))


def block_history(block: Block, selected: int | str | None = None) -> History:
    """The block's versions, and what the selected one (default: the previous) changes against the current."""
    return version_history(block.versions, layout=BLOCK_HISTORY, selected=selected)
