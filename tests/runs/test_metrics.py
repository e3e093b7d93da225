import datetime

import pytest
from django.utils import timezone

from runs.models import Run
from runs.selectors import run_metrics
from tests import factories

pytestmark = pytest.mark.django_db


def make_run(status: str, **fields) -> Run:
    return factories.make_run(workflow_name="w", status=status, **fields)


def test_metrics_count_queued_running_recent_failures_and_the_oldest_queued(client, user):
    now = timezone.now()
    old = make_run("queued")
    Run.objects.filter(pk=old.pk).update(created_at=now - datetime.timedelta(seconds=120))
    make_run("queued")
    make_run("running")
    make_run("cancelling")
    make_run("failed", finished_at=now - datetime.timedelta(minutes=10))
    make_run("failed", finished_at=now - datetime.timedelta(hours=2))
    make_run("succeeded", finished_at=now)
    metrics = run_metrics()
    assert metrics["queued"] == 2 and metrics["running"] == 2 and metrics["failed_last_hour"] == 1
    assert 119 <= metrics["oldest_queued_age_seconds"] <= 180
    client.force_login(user)
    page = client.get("/admin/runs/run/").content.decode()
    assert "2</strong> queued" in page and "1</strong> failed in the last hour" in page


def test_metrics_of_an_idle_system():
    assert run_metrics() == {"queued": 0, "running": 0, "failed_last_hour": 0, "oldest_queued_age_seconds": None}


def test_healthz_answers_anonymous_visitors(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok", "runs_backend": "embedded"}
