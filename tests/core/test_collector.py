"""core.collector.tune: start-up objects frozen out of the collector's way, young collections rarer."""
import gc
from collections.abc import Iterator

import pytest

from core import collector


@pytest.fixture
def _collector_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("_collector_restored")
def test_tune_freezes_what_exists_and_collects_young_objects_less_often(settings) -> None:  # type: ignore[no-untyped-def]
    settings.GC_GEN0_THRESHOLD = 20000
    older = gc.get_threshold()[1:]
    collector.tune()
    assert gc.get_freeze_count() > 10_000  # Django, the SDK and the apps, loaded in this process
    assert gc.get_threshold() == (20000, *older)
    # Cyclic garbage made afterwards is still collected.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1


@pytest.mark.usefixtures("_collector_restored")
def test_zero_leaves_pythons_defaults(settings) -> None:  # type: ignore[no-untyped-def]
    settings.GC_GEN0_THRESHOLD = 0
    before = gc.get_threshold()
    collector.tune()
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before


def test_only_a_procrastinate_worker_is_a_worker() -> None:
    from core.processes import is_worker

    assert is_worker(["manage.py", "procrastinate", "worker", "-c", "5"])
    assert not is_worker(["manage.py", "procrastinate", "defer", "x"]) and not is_worker(["daphne", "worker"])
