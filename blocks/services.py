"""Every write to blocks: validated in full before it is saved."""
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from blocks.models import Block, BlockVersion
from blocks.selectors import UsedBy, block_used_by
from core.conflict import Conflict
from core.versioning import initial_versions, restore_message, version_write
from core.writes import apply_changes

BLOCK_UPDATABLE_FIELDS = {"name", "description", "content"}


class InUse(Conflict):
    """Not deleted: something still uses it. `used_by` names the payloads and workflow steps."""

    def __init__(self, thing: object, used_by: UsedBy) -> None:
        super().__init__(f"“{thing}” is still used by {used_by.describe()}. Remove those uses first.")
        self.used_by = used_by

    def body(self) -> dict[str, Any]:
        return {"used_by": self.used_by.as_dict()}


def block_version_content(block: Any) -> dict[str, Any]:
    """What a block version keeps; reads attributes only, so the data migration can call it too."""
    return {"name": block.name, "description": block.description, "content": block.content}


def block_versions_initial(*, registry: Any) -> None:
    """Data migration: every block without a version gets v1 ("initial version"). `registry`: the
    migration's apps (historical models) or django.apps.apps."""
    initial_versions(subjects=registry.get_model("blocks", "Block").objects.all(),
                     version_model=registry.get_model("blocks", "BlockVersion"), field="block",
                     content=block_version_content)


@transaction.atomic
def block_create(*, name: str, content: str, description: str = "", user: Any = None, message: str = "") -> Block:
    block = Block(name=name, content=content, description=description)
    block.full_clean()
    block.save()
    version_write(versions=block.versions, subject=block, content=block_version_content(block), user=user,
                  message=message)
    return block


@transaction.atomic
def block_update(*, block: Block, data: dict[str, Any], user: Any = None, message: str = "") -> Block:
    """Change name, description or content. Renaming is safe: payloads refer to blocks by id.
    A save that changes the content appends a version; an identical one does not."""
    apply_changes(block, data, allowed=BLOCK_UPDATABLE_FIELDS)
    version_write(versions=block.versions, subject=block, content=block_version_content(block), user=user,
                  message=message)
    return block


@transaction.atomic
def block_version_restore(*, version: BlockVersion, user: Any = None, message: str = "") -> Block:
    """Make an old version current again: saved through block_update, so it becomes a new version."""
    if version.block is None:
        raise ValidationError(f"The block “{version.name}” no longer exists.")
    data = {name: version.content[name] for name in BLOCK_UPDATABLE_FIELDS}
    return block_update(block=version.block, data=data, user=user, message=restore_message(version, message))


@transaction.atomic
def block_delete(*, block: Block) -> None:
    used_by = block_used_by(block)
    if used_by:
        raise InUse(block, used_by)
    block.delete()
