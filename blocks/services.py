"""Every write to blocks: validated in full before it is saved."""
from typing import Any

from django.db import transaction

from blocks.models import Block
from orchestrator.writes import apply_changes

BLOCK_UPDATABLE_FIELDS = {"name", "description", "content"}


@transaction.atomic
def block_create(*, name: str, content: str, description: str = "") -> Block:
    block = Block(name=name, content=content, description=description)
    block.full_clean()
    block.save()
    return block


@transaction.atomic
def block_update(*, block: Block, data: dict[str, Any]) -> Block:
    """Change name, description or content. Renaming is safe: payloads refer to blocks by id."""
    apply_changes(block, data, allowed=BLOCK_UPDATABLE_FIELDS)
    return block
