"""Model permissions decide who sees and changes what; log-ins and run creation are throttled."""
import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from rest_framework.throttling import ScopedRateThrottle

from llm.models import Endpoint
from runs.models import Run
from tests.factories import make_chain, make_endpoint
from tests.security.conftest import client_for

pytestmark = pytest.mark.django_db


def grant(user, *codenames: str) -> None:  # type: ignore[no-untyped-def]
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))


def test_a_user_without_endpoint_permissions_cannot_see_or_touch_endpoints(plain_user):
    endpoint = make_endpoint("http://10.0.0.5:8000/v1")
    client = client_for(plain_user)
    assert client.get("/api/endpoints/").status_code == 403
    assert client.get(f"/api/endpoints/{endpoint.pk}/").status_code == 403
    assert client.post(f"/api/endpoints/{endpoint.pk}/test/").status_code == 403
    assert client.delete(f"/api/endpoints/{endpoint.pk}/").status_code == 403
    assert Endpoint.objects.filter(pk=endpoint.pk).exists()


def test_viewing_endpoints_does_not_allow_changing_their_url_or_key(plain_user):
    endpoint = make_endpoint("http://10.0.0.5:8000/v1", api_key="sk-original")
    grant(plain_user, "view_endpoint")
    client = client_for(plain_user)
    assert client.get(f"/api/endpoints/{endpoint.pk}/").status_code == 200
    for body in ({"base_url": "http://10.0.0.6:8000/v1"}, {"api_key": "sk-attacker"}):
        assert client.patch(f"/api/endpoints/{endpoint.pk}/", body, format="json").status_code == 403
    assert client.post("/api/endpoints/", {"name": "mine", "base_url": "http://10.0.0.7/v1", "default_model": "m"},
                       format="json").status_code == 403
    endpoint.refresh_from_db()
    assert endpoint.base_url == "http://10.0.0.5:8000/v1" and endpoint.api_key == "sk-original"


def test_change_permission_allows_changing_the_url_and_key(plain_user):
    endpoint = make_endpoint("http://10.0.0.5:8000/v1", api_key="sk-original")
    grant(plain_user, "view_endpoint", "change_endpoint")
    response = client_for(plain_user).patch(
        f"/api/endpoints/{endpoint.pk}/", {"base_url": "http://10.0.0.6:8000/v1", "api_key": "sk-new"}, format="json")
    assert response.status_code == 200
    endpoint.refresh_from_db()
    assert endpoint.base_url == "http://10.0.0.6:8000/v1" and endpoint.api_key == "sk-new"


def test_starting_a_run_needs_add_run_and_reading_runs_needs_view_run(plain_user):
    workflow = make_chain(make_endpoint())

    def as_user():  # type: ignore[no-untyped-def]
        # Permissions are cached on the user object: read them afresh after each grant.
        return client_for(type(plain_user).objects.get(pk=plain_user.pk))

    start = f"/api/workflows/{workflow.pk}/runs/"
    assert as_user().post(start, {"inputs": {"topic": "x"}}, format="json").status_code == 403
    assert as_user().get("/api/runs/").status_code == 403
    grant(plain_user, "add_run")
    assert as_user().post(start, {"inputs": {"topic": "x"}}, format="json").status_code == 201
    assert as_user().get("/api/runs/").status_code == 403
    grant(plain_user, "view_run")
    assert len(as_user().get("/api/runs/").json()["results"]) == 1


def test_a_user_who_may_only_view_runs_cannot_cancel_or_rerun_them(plain_user):
    run_id = client_for(type(plain_user).objects.create_superuser("boss", "b@example.com", "pw")).post(
        f"/api/workflows/{make_chain(make_endpoint()).pk}/runs/", {"inputs": {"topic": "x"}}, format="json").json()["id"]
    grant(plain_user, "view_run")
    client = client_for(type(plain_user).objects.get(pk=plain_user.pk))
    assert client.get(f"/api/runs/{run_id}/").status_code == 200
    assert client.post(f"/api/runs/{run_id}/cancel/").status_code == 403
    assert client.post(f"/api/runs/{run_id}/rerun/", {"from_step": 0}, format="json").status_code == 403
    assert Run.objects.get(pk=run_id).status == "queued" and Run.objects.count() == 1


def test_run_creation_is_throttled_per_user(monkeypatch, user, django_user_model):
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "runs", "3/minute")
    workflow = make_chain(make_endpoint())
    client = client_for(user)
    statuses = [client.post(f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": f"t{i}"}}, format="json")
                for i in range(4)]
    assert [r.status_code for r in statuses] == [201, 201, 201, 429]
    assert "throttled" in statuses[-1].json()["detail"].lower() and int(statuses[-1]["Retry-After"]) > 0
    assert Run.objects.count() == 3
    # Another user has a budget of their own.
    other = django_user_model.objects.create_superuser("other", "o@example.com", "pw-for-tests-only")
    assert client_for(other).post(f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": "o"}},
                                  format="json").status_code == 201


@pytest.mark.parametrize("login_path", ["/accounts/login/", "/admin/login/", "/api/auth/login/"])
def test_failed_logins_are_throttled_then_even_the_right_password_waits(user, login_path):
    client = Client()
    for _ in range(10):
        assert client.post(login_path, {"username": "admin", "password": "wrong"}).status_code == 200
    refused = client.post(login_path, {"username": "admin", "password": "pw-for-tests-only"})
    assert refused.status_code == 429
    assert "Too many failed log-ins" in refused.content.decode() and int(refused["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session


def test_successful_logins_do_not_use_up_the_budget(user):
    client = Client()
    for _ in range(15):
        assert client.post("/admin/login/", {"username": "admin", "password": "pw-for-tests-only"}).status_code == 302
        client.logout()
