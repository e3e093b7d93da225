"""An experiment's cache choice goes to every cell's run: with "use", a case asked again (a repeat)
gets the stored answer; with "off", every cell calls the LLM whatever is stored."""
from __future__ import annotations

import pytest

from experiments.models import Cell
from llm.models import CachedResponse
from runs.models import Response
from tests.experiments.conftest import make_dataset_version, make_two_releases, start_experiment
from tests.experiments.running import drive_to_end

pytestmark = pytest.mark.django_db(transaction=True)


def test_cells_use_the_cache_the_experiment_asks_for_and_no_cache_wins(fake_llm, api):
    workflow, first, second = make_two_releases(fake_llm.base_url)
    version = make_dataset_version(3)
    cached = start_experiment(workflow, version, [first, second], repeats=2, concurrency=1, cache_mode="use")
    assert drive_to_end(cached.pk).succeeded == 12
    # One call per variant and case; each repeat was answered from the cache.
    assert fake_llm.stats()["chat_requests"] == 6 and CachedResponse.objects.count() == 6
    statuses = sorted(Response.objects.filter(run__experiment_cell__experiment=cached).values_list("cache_status", flat=True))
    assert statuses == ["hit"] * 6 + ["miss"] * 6
    assert {c.run.cache_mode for c in Cell.objects.filter(experiment=cached).select_related("run")} == {"use"}
    assert api.get(f"/api/experiments/{cached.pk}/").json()["cache_mode"] == "use"

    uncached = start_experiment(workflow, version, [first, second], name="again", cache_mode="off")
    assert drive_to_end(uncached.pk).succeeded == 6
    assert fake_llm.stats()["chat_requests"] == 12
    assert set(Response.objects.filter(run__experiment_cell__experiment=uncached).values_list("cache_status", flat=True)) == {None}


def test_an_unknown_cache_choice_is_refused_naming_the_field(fake_llm, api):
    workflow, first, _ = make_two_releases(fake_llm.base_url)
    version = make_dataset_version(1)
    response = api.post("/api/experiments/", {"name": "x", "workflow": workflow.pk, "dataset_version": version.pk,
                                              "variants": [{"release": first.pk}], "cache_mode": "always"},
                        format="json")
    assert response.status_code == 400 and "cache_mode" in response.json()
