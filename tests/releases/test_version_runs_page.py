"""From a version on a History page to the runs that used it (one query on the runs list)."""
import pytest

from blocks.services import block_update
from runs.services import run_start
from tests.factories import make_endpoint
from tests.releases.test_services import versioned_tree

pytestmark = pytest.mark.django_db


def test_a_block_versions_runs_are_one_click_from_its_history(admin_client):
    workflow, tone = versioned_tree(make_endpoint())
    first = run_start(workflow=workflow, inputs={"topic": "tides"}, user=None)
    block_update(block=tone, data={"content": "Briskly {{ topic }}."})
    second = run_start(workflow=workflow, inputs={"topic": "tides"}, user=None)
    v1 = tone.versions.get(number=1)
    history = admin_client.get(f"/blocks/{tone.pk}/history/").content.decode()
    assert f'href="/runs/?block_version={v1.pk}"' in history
    page = admin_client.get(f"/runs/?block_version={v1.pk}")
    assert {run.pk for run in page.context["page"]} == {first.pk}
    assert "runs that used block “story-tone” v1" in page.content.decode()
    v2 = tone.versions.get(number=2)
    assert {run.pk for run in admin_client.get(f"/runs/?block_version={v2.pk}").context["page"]} == {second.pk}
    payload_v1 = workflow.steps.get().payload.versions.get(number=1)
    assert {run.pk for run in admin_client.get(f"/runs/?payload_version={payload_v1.pk}").context["page"]} == {
        first.pk, second.pk}


def test_the_link_needs_the_permission_to_see_runs(client_with_perms):
    _, tone = versioned_tree(make_endpoint())
    client = client_with_perms("blocks.view_block")
    assert "Runs that used" not in client.get(f"/blocks/{tone.pk}/history/").content.decode()
