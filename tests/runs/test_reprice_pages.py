"""The reprice API (/api/reprice/) and page (/prices/reprice/): permissions, previews, jobs, bad input named."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from runs.models import RepriceJob, Response
from runs.reprice import reprice_jobs_work
from tests.factories import make_chain, make_endpoint
from tests.runs.test_reprice import add_price, add_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def priced():
    add_run(make_chain(make_endpoint()))
    add_price("gpt-4o-mini", "0.15", "0.6")


def api_with_perms(django_user_model, *perms: str) -> APIClient:
    person = django_user_model.objects.create_user(f"api{django_user_model.objects.count()}", password="x")
    for perm in perms:
        app_label, codename = perm.split(".")
        person.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client = APIClient()
    client.force_authenticate(person)
    return client


def test_the_api_previews_with_the_view_permission_and_applies_only_with_the_change_permission(priced, django_user_model):
    viewer = api_with_perms(django_user_model, "prices.view_price")
    preview = viewer.post("/api/reprice/", {"dry_run": True}, format="json")
    assert preview.status_code == 200
    assert preview.json() == {"examined": 3, "changed": 3, "totals_before": {}, "totals_after": {"USD": "0.000834000"},
                              "unpriced_before": 3, "unpriced_after": 0}
    assert viewer.post("/api/reprice/", {}, format="json").status_code == 403
    assert not RepriceJob.objects.exists()
    editor = api_with_perms(django_user_model, "prices.view_price", "prices.change_price")
    started = editor.post("/api/reprice/", {"since": "2020-01-01", "model": "gpt-.*"}, format="json")
    assert started.status_code == 202 and started.json()["status"] == "pending"
    reprice_jobs_work()
    job = viewer.get(f"/api/reprice/{started.json()['id']}/").json()
    assert (job["status"], job["changed"], job["totals_after"]) == ("done", 3, {"USD": "0.000834000"})
    assert Response.objects.filter(cost_source="computed").count() == 3


def test_the_api_refuses_strangers_and_names_bad_fields(priced, django_user_model, api):
    assert APIClient().post("/api/reprice/", {"dry_run": True}, format="json").status_code in (401, 403)
    assert api_with_perms(django_user_model).get("/api/reprice/1/").status_code == 403
    for body, field in (({"since": "last week"}, "since"), ({"until": "2026-13-40"}, "until"),
                        ({"model": "gpt-("}, "model"), ({"since": "2026-11-02", "until": "2026-11-01"}, "until"),
                        ({"model": 5}, "model"), ({"colour": "red"}, "colour")):
        answer = api.post("/api/reprice/", {**body, "dry_run": True}, format="json")
        assert answer.status_code == 400 and field in answer.json(), (body, answer.json())
    assert api.get("/api/reprice/999/").status_code == 404


def test_the_page_previews_and_applies_and_follows_the_job(priced, user_client):
    page = user_client.get("/prices/reprice/")
    assert page.status_code == 200 and b'name="apply"' in page.content
    preview = user_client.post("/prices/reprice/", {"model": "gpt-.*", "preview": "1"})
    assert preview.status_code == 200
    assert b'data-currency="USD"' in preview.content and b"0.000834000" in preview.content
    assert not RepriceJob.objects.exists()
    applied = user_client.post("/prices/reprice/", {"model": "gpt-.*", "apply": "1"})
    job = RepriceJob.objects.get()
    assert applied.status_code == 302 and applied["Location"] == f"/prices/reprice/{job.pk}/"
    progress = user_client.get(applied["Location"], headers={"HX-Request": "true"})
    assert b'data-status="pending"' in progress.content and b'hx-trigger="every 2s"' in progress.content
    reprice_jobs_work()
    done = user_client.get(applied["Location"])
    assert b'data-status="done"' in done.content and b"hx-trigger" not in done.content


def test_the_page_needs_its_permissions_and_names_bad_fields(priced, client_with_perms, user_client):
    assert client_with_perms().get("/prices/reprice/").status_code == 403
    viewer = client_with_perms("prices.view_price")
    page = viewer.get("/prices/reprice/")
    assert page.status_code == 200 and b'name="apply"' not in page.content
    assert viewer.post("/prices/reprice/", {"preview": "1"}).status_code == 200
    assert viewer.post("/prices/reprice/", {"apply": "1"}).status_code == 403
    assert not RepriceJob.objects.exists()
    bad = user_client.post("/prices/reprice/", {"model": "gpt-(", "since": "soon", "preview": "1"})
    assert bad.status_code == 400
    assert b"id_model_errors" in bad.content and b"id_since_errors" in bad.content
