"""Reads of the Block Manager."""
from __future__ import annotations

from django.db.models import Q, QuerySet

from blocks.models import Block
from payloads.models import Payload
from workflows.models import Workflow


def block_list(*, search: str = "") -> QuerySet[Block]:
    blocks = Block.objects.order_by("name")
    if search:
        # A variable is found by its name in the template text, so one search box covers all three.
        blocks = blocks.filter(Q(name__icontains=search) | Q(description__icontains=search)
                               | Q(content__icontains=search))
    return blocks


def block_used_by(block: Block) -> tuple[list[Payload], list[Workflow]]:
    """The payloads that contain the block, and the workflows with a step running one of them."""
    payloads = list(Payload.objects.filter(payload_blocks__block=block).distinct().order_by("name"))
    workflows = list(Workflow.objects.filter(steps__payload__in=payloads).distinct().order_by("name"))
    return payloads, workflows
