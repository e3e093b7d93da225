import datetime

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from runs.models import Run, RunStatus

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:runs_run_changelist"


def act(client, action: str, runs: list[Run]):  # type: ignore[no-untyped-def]
    return client.post(reverse(CHANGELIST), {"action": action, "_selected_action": [r.pk for r in runs]}, follow=True)


def queued_copy(run: Run, **fields: object) -> Run:
    return Run.objects.create(workflow=run.workflow, workflow_name=run.workflow_name, inputs=run.inputs,
                              release=run.release, step_count=run.step_count, **fields)


def test_run_page_shows_rendered_messages_output_tokens_and_attempts(admin_client, demo):
    page = admin_client.get(reverse("admin:runs_run_change", args=[demo.run.pk])).content.decode()
    assert "rendered prompt 0 &lt;b&gt;" in page
    assert "answer 1" in page
    assert "&quot;status&quot;: 200" in page or '"status": 200' in page
    assert 'name="_save"' not in page  # read-only


def test_run_list_shows_status_tokens_and_latency(admin_client, demo):
    response = admin_client.get(reverse(CHANGELIST))
    page = response.content.decode()
    assert "succeeded" in page and ">70<" in page and ">120<" in page and "2/2" in page


def test_cancel_action_cancels_a_queued_run_and_skips_finished_ones(admin_client, demo):
    queued = queued_copy(demo.run)
    response = act(admin_client, "cancel_runs", [queued, demo.run])
    assert "Cancelled 1 run(s). 1 had already finished." in response.content.decode()
    queued.refresh_from_db()
    demo.run.refresh_from_db()
    assert queued.status == RunStatus.CANCELLED and queued.finished_at is not None
    assert demo.run.status == RunStatus.SUCCEEDED


def test_cancel_action_asks_the_holder_of_a_running_step_to_stop(admin_client, demo):
    running = queued_copy(demo.run, status=RunStatus.RUNNING, lease_owner="worker-1",
                          lease_expires_at=timezone.now() + datetime.timedelta(minutes=5))
    act(admin_client, "cancel_runs", [running])
    running.refresh_from_db()
    assert running.status == RunStatus.CANCELLING and running.cancel_requested


def test_rerun_action_starts_a_new_run_with_the_same_inputs(admin_client, demo):
    response = act(admin_client, "rerun_runs", [demo.run])
    new_run = Run.objects.exclude(pk=demo.run.pk).get()
    assert f"Started run(s) {new_run.pk}." in response.content.decode()
    assert new_run.status == RunStatus.QUEUED
    assert new_run.inputs == demo.run.inputs and new_run.source_run == demo.run


def test_rerun_of_a_run_whose_workflow_was_deleted_says_why(admin_client, demo):
    demo.workflow.delete()
    response = act(admin_client, "rerun_runs", [demo.run])
    assert f"Run {demo.run.pk} was not re-run: The source run&#x27;s workflow was deleted." in response.content.decode()
    assert Run.objects.count() == 1


def test_a_viewer_without_change_permission_sees_no_run_actions(client, django_user_model, demo):
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_run"))
    client.force_login(viewer)
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    assert "cancel_runs" not in response.content.decode()
    act(client, "cancel_runs", [queued_copy(demo.run)])
    assert not Run.objects.filter(status=RunStatus.CANCELLED).exists()
