"""/api/evaluations/ and /api/run-checks/: read with view permissions, write through the services,
bad assertions a 400 naming the assertion and field."""
from __future__ import annotations

import pytest

from evaluations.models import Evaluation, RunChecks, Score
from evaluations.services import evaluation_create
from tests.factories import make_chain, make_endpoint, make_run

pytestmark = pytest.mark.django_db


def test_run_checks_are_set_and_bad_ones_refused_naming_the_field(api, api_with_perms):
    workflow = make_chain(make_endpoint())
    bad = api.put(f"/api/run-checks/{workflow.pk}/", {"assertions": [{"type": "regex", "value": "(x"}]}, format="json")
    assert bad.status_code == 400 and "assertions[0].value" in bad.json()
    unknown = api.put(f"/api/run-checks/{workflow.pk}/", {"assertions": [], "colour": 1}, format="json")
    assert unknown.status_code == 400 and "colour" in str(unknown.json())
    assert not RunChecks.objects.exists()
    ok = api.put(f"/api/run-checks/{workflow.pk}/", {"assertions": [{"type": "contains", "value": "a"}]}, format="json")
    assert ok.status_code == 200 and ok.json()["evaluation"] is not None
    assert api.get(f"/api/run-checks/{workflow.pk}/").json()["assertions"] == [{"type": "contains", "value": "a"}]
    viewer = api_with_perms("evaluations.view_runchecks")
    assert viewer.get(f"/api/run-checks/{workflow.pk}/").status_code == 200
    assert viewer.put(f"/api/run-checks/{workflow.pk}/", {"assertions": []}, format="json").status_code == 403


def test_evaluations_and_their_scores_are_listed_and_errors_rescored(api, api_with_perms, client):
    workflow = make_chain(make_endpoint())
    runs = [make_run(workflow=workflow, workflow_name=workflow.name, status="succeeded") for _ in range(3)]
    evaluation = evaluation_create(scope="runs", assertions=[{"type": "cost", "threshold": 1}],
                                   subjects=[(run.pk, None, None) for run in runs])
    Score.objects.filter(evaluation=evaluation).update(outcome="error", reason="no price")
    Evaluation.objects.filter(pk=evaluation.pk).update(status="done", scored=3, errors=3)
    listed = api.get("/api/evaluations/?scope=runs").json()
    assert listed["count"] == 1 and listed["results"][0]["pass_rate"]["pass_rate"] is None
    scores = api.get(f"/api/evaluations/{evaluation.pk}/scores/?outcome=error").json()
    assert scores["count"] == 3
    assert api.get(f"/api/evaluations/{evaluation.pk}/scores/?outcome=maybe").status_code == 400
    viewer = api_with_perms("evaluations.view_evaluation")
    assert viewer.get(f"/api/evaluations/{evaluation.pk}/").status_code == 200
    assert viewer.post(f"/api/evaluations/{evaluation.pk}/rescore-errors/").status_code == 403
    assert api.post(f"/api/evaluations/{evaluation.pk}/rescore-errors/").json() == {"rescored": 3}
    assert Evaluation.objects.get(pk=evaluation.pk).status == "pending"
    assert client.get("/api/evaluations/").status_code in (401, 403)


def test_the_admin_shows_evaluations_read_only_and_refuses_bad_run_checks(user_client):
    workflow = make_chain(make_endpoint())
    evaluation = evaluation_create(scope="runs", assertions=[{"type": "contains", "value": "a"}])
    page = user_client.get(f"/admin/evaluations/evaluation/{evaluation.pk}/change/")
    assert page.status_code == 200 and "contains" in page.content.decode()
    bad = user_client.post("/admin/evaluations/runchecks/add/", {
        "workflow": workflow.pk, "assertions": '[{"type": "regexx"}]', "enabled": "on"})
    assert bad.status_code == 200 and "assertions[0].type" in bad.content.decode()
    assert not RunChecks.objects.exists()
    good = user_client.post("/admin/evaluations/runchecks/add/", {
        "workflow": workflow.pk, "assertions": '[{"type": "contains", "value": "a"}]', "enabled": "on"})
    assert good.status_code == 302 and RunChecks.objects.get().evaluation is not None
