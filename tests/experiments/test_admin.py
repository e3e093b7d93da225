"""The admin: experiments read-only with their variants and aggregates, cells read-only by page linking
to their runs, cancel and retry through experiments.services, and the experiments permissions."""
from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.test import Client

from experiments.models import Cell, Experiment
from tests.experiments.conftest import make_dataset_version, make_two_releases, start_experiment
from tests.experiments.running import drive_to_end

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def experiment(fake_llm) -> Experiment:  # type: ignore[no-untyped-def]
    fake_llm.control(usage_cost=0.001)
    workflow, first, second = make_two_releases(fake_llm.base_url, max_retries=0)
    return start_experiment(workflow, make_dataset_version(2), [first, second], name="prompts <b>A/B</b>")


def _act(client: Client, action: str, experiment: Experiment) -> None:
    response = client.post("/admin/experiments/experiment/", {"action": action, "_selected_action": [experiment.pk]})
    assert response.status_code == 302, response.content.decode()[:2000]


def test_the_list_and_the_read_only_detail_show_counts_cost_variants_and_aggregates(user_client: Client,
                                                                                       experiment: Experiment) -> None:
    drive_to_end(experiment.pk)
    listing = user_client.get("/admin/experiments/experiment/").content.decode()
    assert "prompts &lt;b&gt;A/B&lt;/b&gt;" in listing and "<b>A/B</b>" not in listing
    assert "4/4" in listing and "$0.004" in listing and "finished" in listing.lower()
    detail = user_client.get(f"/admin/experiments/experiment/{experiment.pk}/change/")
    text = detail.content.decode()
    assert detail.status_code == 200 and 'name="_save"' not in text
    names = [variant.name for variant in experiment.variants.all()]
    assert all(name in text for name in names) and "100%" in text
    assert f"/admin/experiments/cell/?experiment__id__exact={experiment.pk}" in text
    assert user_client.get("/admin/experiments/experiment/add/").status_code == 403


def test_the_detail_shows_the_response_cache_choice(user_client: Client, fake_llm) -> None:  # type: ignore[no-untyped-def]
    workflow, first, second = make_two_releases(fake_llm.base_url)
    version = make_dataset_version(1)
    cached = start_experiment(workflow, version, [first, second], name="cached", cache_mode="off")
    default = start_experiment(workflow, version, [first], name="as payloads say")
    page = user_client.get(f"/admin/experiments/experiment/{cached.pk}/change/").content.decode()
    assert re.search(r'<label class="inline">Response cache:</label>\s*<div class="readonly">No cache</div>', page)
    page = user_client.get(f"/admin/experiments/experiment/{default.pk}/change/").content.decode()
    assert re.search(r'<label class="inline">Response cache:</label>\s*<div class="readonly">As each payload says</div>', page)


def test_cells_are_read_only_paged_and_link_to_their_runs(user_client: Client, experiment: Experiment) -> None:
    drive_to_end(experiment.pk)
    page = user_client.get(f"/admin/experiments/cell/?experiment__id__exact={experiment.pk}").content.decode()
    for cell in Cell.objects.filter(experiment=experiment):
        assert f"/admin/runs/run/{cell.run_id}/change/" in page
    cell = Cell.objects.filter(experiment=experiment).first()
    assert user_client.get(f"/admin/experiments/cell/{cell.pk}/change/").status_code == 200
    assert user_client.post(f"/admin/experiments/cell/{cell.pk}/change/", {"status": "failed"}).status_code == 403
    assert user_client.get("/admin/experiments/cell/add/").status_code == 403
    assert Cell.objects.get(pk=cell.pk).status == "succeeded"


def test_cancel_and_retry_actions_go_through_the_services(user_client: Client, experiment: Experiment,
                                                          fake_llm) -> None:  # type: ignore[no-untyped-def]
    _act(user_client, "cancel_experiments", experiment)
    experiment.refresh_from_db()
    assert (experiment.status, experiment.cancelled) == ("stopping", 4)
    assert drive_to_end(experiment.pk).status == "cancelled"
    # A finished one with errored cells: retry queues those cells again, and they run.
    workflow, first = experiment.workflow, experiment.variants.first().release
    fake_llm.fail_next({"status": 500})
    other = start_experiment(workflow, make_dataset_version(2, name="more"), [first], concurrency=1)
    assert drive_to_end(other.pk).failed == 1
    _act(user_client, "retry_errored_cells", other)
    other.refresh_from_db()
    assert (other.status, other.queued, other.failed) == ("running", 1, 0)
    assert drive_to_end(other.pk).succeeded == 2


def test_deleting_needs_the_experiment_ended(user_client: Client, experiment: Experiment) -> None:
    assert user_client.get(f"/admin/experiments/experiment/{experiment.pk}/delete/").status_code == 403
    _act(user_client, "cancel_experiments", experiment)
    drive_to_end(experiment.pk)
    response = user_client.post(f"/admin/experiments/experiment/{experiment.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not Experiment.objects.exists()


def test_permissions_are_the_experiments_model_permissions(client_with_perms: Callable[..., Client],
                                                           django_user_model, experiment: Experiment) -> None:  # type: ignore[no-untyped-def]
    outsider = client_with_perms("runs.view_run")
    viewer = client_with_perms("experiments.view_experiment")
    changer = client_with_perms("experiments.view_experiment", "experiments.change_experiment")
    django_user_model.objects.filter(username__startswith="person").update(is_staff=True)
    assert outsider.get("/admin/experiments/experiment/").status_code == 403
    assert outsider.get("/admin/experiments/cell/").status_code == 403
    assert viewer.get(f"/admin/experiments/experiment/{experiment.pk}/change/").status_code == 200
    assert viewer.get("/admin/experiments/cell/").status_code == 200
    assert "cancel_experiments" not in viewer.get("/admin/experiments/experiment/").content.decode()
    viewer.post("/admin/experiments/experiment/", {"action": "cancel_experiments", "_selected_action": [experiment.pk]})
    experiment.refresh_from_db()
    assert experiment.status == "running"
    assert "cancel_experiments" in changer.get("/admin/experiments/experiment/").content.decode()
    _act(changer, "cancel_experiments", experiment)
    experiment.refresh_from_db()
    assert experiment.status == "stopping"
