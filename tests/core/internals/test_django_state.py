"""mark_saved() leaves an instance as Model.from_db() does: the ORM then treats its row as existing."""
import pytest
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS

from blocks.models import Block
from core.internals.django_state import mark_saved

pytestmark = pytest.mark.django_db


def test_from_db_sets_the_state_that_mark_saved_sets() -> None:
    """The shape of ModelState: if this fails, the internal changed and the helper must follow."""
    block = Block.objects.create(name="greeting", content="Hello")
    loaded = Block.objects.get(pk=block.pk)
    built = Block(pk=block.pk, name="greeting", content="Hello")
    assert (built._state.adding, built._state.db) == (True, None)
    mark_saved(built, DEFAULT_DB_ALIAS)
    assert (built._state.adding, built._state.db) == (loaded._state.adding, loaded._state.db) == (False, "default")


def test_a_marked_instance_is_its_own_row_for_validation_and_save() -> None:
    block = Block.objects.create(name="greeting", content="Hello")
    built = Block(pk=block.pk, name="greeting", content="Hello again", created_at=block.created_at)
    with pytest.raises(ValidationError, match="already exists"):
        built.full_clean()  # a new instance with the same name clashes with the stored row
    mark_saved(built, DEFAULT_DB_ALIAS)
    built.full_clean()
    built.save()
    assert Block.objects.count() == 1
    assert Block.objects.get(pk=block.pk).content == "Hello again"
