"""Concurrent saves of one object get consecutive version numbers: no gap, no duplicate.

Runs on SQLite (the project's backend takes the write lock at BEGIN) and, in `make test-distributed`,
on PostgreSQL (the saving UPDATE and select_for_update lock the object's row).
"""
import threading

import pytest
from django.db import IntegrityError, connection, transaction

from blocks.models import Block, BlockVersion
from blocks.services import block_create, block_update

SAVERS = 8


@pytest.mark.django_db(transaction=True)
def test_threads_saving_one_block_get_consecutive_numbers():
    block = block_create(name="busy", content="start")
    barrier = threading.Barrier(SAVERS)
    errors: list[BaseException] = []

    def save(n: int) -> None:
        try:
            mine = Block.objects.get(pk=block.pk)
            barrier.wait()
            block_update(block=mine, data={"content": f"text {n}"}, message=f"saver {n}")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=save, args=(n,)) for n in range(SAVERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    versions = list(block.versions.order_by("number"))
    assert [v.number for v in versions] == list(range(1, SAVERS + 2))
    assert sorted(v.message for v in versions[1:]) == sorted(f"saver {n}" for n in range(SAVERS))
    block.refresh_from_db()
    assert versions[-1].content["content"] == block.content  # the last version is what is saved now


@pytest.mark.django_db
def test_a_duplicate_number_is_refused_by_the_database():
    block = block_create(name="one", content="x")
    with pytest.raises(IntegrityError), transaction.atomic():
        BlockVersion.objects.create(block=block, name="one", number=1, content={}, content_hash="0" * 64)
