"""raw_delete deletes exactly what the plain ORM's delete would, when nothing points at the rows."""
import pytest

from blocks.models import Block
from core.internals.django_raw_delete import raw_delete

pytestmark = pytest.mark.django_db


def test_raw_delete_removes_the_selected_rows_and_counts_them():
    for n in range(5):
        Block.objects.create(name=f"b{n}", content="x")
    kept = set(Block.objects.exclude(name__in=["b1", "b3"]).values_list("pk", flat=True))
    assert raw_delete(Block.objects.filter(name__in=["b1", "b3"])) == 2
    assert set(Block.objects.values_list("pk", flat=True)) == kept


def test_it_matches_the_orm_delete():
    for n in range(4):
        Block.objects.create(name=f"o{n}", content="x")
    orm_count, _ = Block.objects.filter(name__in=["o0", "o1"]).delete()
    assert raw_delete(Block.objects.filter(name__in=["o2", "o3"])) == orm_count
    assert not Block.objects.exists()
