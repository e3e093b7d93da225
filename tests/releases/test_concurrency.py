"""Many runs of a tree nobody ran before, started at once, share one release; the next tree gets the next number.

Runs on SQLite and, in `make test-distributed`, on PostgreSQL (the workflow's row is locked while a
release is written; the (workflow, hash) constraint is the backstop).
"""
import threading

import pytest
from django.db import connection

from blocks.services import block_update
from releases.models import Release
from runs.models import Run
from runs.services import run_start
from tests.factories import make_endpoint
from tests.releases.test_services import versioned_tree

STARTERS = 8


def start_together(workflow) -> list[BaseException]:
    barrier = threading.Barrier(STARTERS)
    errors: list[BaseException] = []

    def start(n: int) -> None:
        try:
            barrier.wait()
            run_start(workflow=workflow, inputs={"topic": f"t{n}"}, user=None)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller's assertion
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=start, args=(n,)) for n in range(STARTERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_of_a_new_tree_share_one_release():
    workflow, tone = versioned_tree(make_endpoint())
    assert start_together(workflow) == []
    assert Release.objects.count() == 1
    assert set(Run.objects.values_list("release__number", flat=True)) == {1}
    block_update(block=tone, data={"content": "Briskly {{ topic }}."})
    assert start_together(workflow) == []
    assert list(Release.objects.order_by("number").values_list("number", flat=True)) == [1, 2]
    assert Run.objects.filter(release__number=2).count() == STARTERS
