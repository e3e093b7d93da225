"""Every way to start a run shares one per-user throttle; cancelling needs change_run on pages too."""
import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from rest_framework.throttling import SimpleRateThrottle

from runs.models import Run
from runs.services import run_start
from tests.factories import make_chain, make_endpoint, make_release

pytestmark = pytest.mark.django_db


def _logged_in(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def _starts(client: Client, workflow_id: int, source_id: int) -> list[tuple[str, object]]:
    """Each route that starts a run, called once; what it answered."""
    json_body = {"content_type": "application/json"}
    return [
        ("api create", client.post(f"/api/workflows/{workflow_id}/runs/", {"inputs": {"topic": "a"}}, **json_body)),
        ("api rerun", client.post(f"/api/runs/{source_id}/rerun/", {"from_step": 0}, **json_body)),
        ("run form", client.post(f"/run/{workflow_id}/", {"topic": "b"})),
        ("page rerun", client.post(f"/runs/{source_id}/rerun/", follow=True)),
        ("replay", client.post(f"/runs/{source_id}/replay/", {"from_step": "0", "topic": "c"})),
        ("admin rerun", client.post("/admin/runs/run/", {"action": "rerun_runs", "_selected_action": [source_id]},
                                    follow=True)),
    ]


def test_one_throttle_counts_every_way_to_start_a_run(monkeypatch, user):
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "runs", "6/minute")
    workflow = make_chain(make_endpoint())
    source = run_start(workflow=workflow, inputs={"topic": "s"}, user=user)
    client = _logged_in(user)
    allowed = _starts(client, workflow.pk, source.pk)
    assert [name for name, r in allowed if r.status_code not in (200, 201, 302)] == []
    assert Run.objects.count() == 1 + 6
    refused = dict(_starts(client, workflow.pk, source.pk))
    assert refused["api create"].status_code == 429 and refused["api rerun"].status_code == 429
    for name in ("run form", "replay"):
        assert refused[name].status_code == 429, name
        assert "Too many runs started; try again in" in refused[name].content.decode()
    for name in ("page rerun", "admin rerun"):
        assert "Too many runs started; try again in" in refused[name].content.decode(), name
    assert Run.objects.count() == 1 + 6


def test_cancelling_on_the_page_needs_change_run_like_the_api(user, django_user_model):
    workflow = make_chain(make_endpoint())
    run = Run.objects.create(workflow=workflow, workflow_name=workflow.name, inputs={"topic": "s"},
                             release=make_release(workflow, {"steps": []}), created_by=user)
    starter = django_user_model.objects.create_user("starter", password="x")
    starter.user_permissions.add(*Permission.objects.filter(codename__in=["add_run", "view_run"]))
    client = _logged_in(starter)
    assert client.post(f"/runs/{run.pk}/cancel/").status_code == 403
    assert client.post(f"/api/runs/{run.pk}/cancel/").status_code == 403
    assert 'id="cancel-form" hidden' in client.get(f"/runs/{run.pk}/").content.decode()
    run.refresh_from_db()
    assert run.status == "queued" and not run.cancel_requested
    starter.user_permissions.add(Permission.objects.get(codename="change_run"))
    assert _logged_in(starter).post(f"/runs/{run.pk}/cancel/").status_code == 302
    run.refresh_from_db()
    assert run.status == "cancelled"
