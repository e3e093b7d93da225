"""Every write to blocks: validated in full before it is saved."""
from typing import Any

from django.db import transaction

from blocks.models import Block
from blocks.selectors import UsedBy, block_used_by
from core.conflict import Conflict
from core.writes import apply_changes

BLOCK_UPDATABLE_FIELDS = {"name", "description", "content"}


class InUse(Conflict):
    """Not deleted: something still uses it. `used_by` names the payloads and workflow steps."""

    def __init__(self, thing: object, used_by: UsedBy) -> None:
        super().__init__(f"“{thing}” is still used by {used_by.describe()}. Remove those uses first.")
        self.used_by = used_by

    def body(self) -> dict[str, Any]:
        return {"used_by": self.used_by.as_dict()}


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


@transaction.atomic
def block_delete(*, block: Block) -> None:
    used_by = block_used_by(block)
    if used_by:
        raise InUse(block, used_by)
    block.delete()
