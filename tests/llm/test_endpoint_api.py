"""The endpoint API: the API key is write-only; writes validate; deleting a used endpoint is a 409."""
from typing import Any

import pytest
from rest_framework.test import APIClient

from llm.models import Endpoint
from tests.factories import make_block, make_endpoint, make_payload

pytestmark = pytest.mark.django_db

VALID = {"name": "local", "base_url": "http://127.0.0.1:8001/v1", "api_key": "sk-abc123secret",
         "default_model": "gpt-4o-mini"}


def create(api: APIClient, **overrides: Any) -> Any:
    return api.post("/api/endpoints/", {**VALID, **overrides}, format="json")


def test_create_stores_the_key_encrypted_and_never_returns_it(api: APIClient) -> None:
    response = create(api)
    assert response.status_code == 201, response.data
    assert "api_key" not in response.data
    assert response.data["has_api_key"] is True
    assert "sk-abc123secret" not in response.content.decode()
    endpoint = Endpoint.objects.get(name="local")
    assert endpoint.api_key == "sk-abc123secret"
    assert "sk-abc123secret" not in endpoint.api_key_encrypted


def test_read_and_list_never_show_the_key(api: APIClient) -> None:
    endpoint_id = create(api).data["id"]
    for url in ("/api/endpoints/", f"/api/endpoints/{endpoint_id}/"):
        response = api.get(url)
        assert response.status_code == 200
        assert "sk-abc123secret" not in response.content.decode()
        assert "api_key_encrypted" not in response.content.decode()
    assert api.get(f"/api/endpoints/{endpoint_id}/").data["has_api_key"] is True


def test_defaults_are_returned(api: APIClient) -> None:
    data = create(api).data
    assert data["timeout_seconds"] == 60.0
    assert data["max_retries"] == 3
    assert data["max_concurrency"] == 64
    assert data["extra_headers"] == {}
    assert data["enabled"] is True
    assert data["is_mock"] is False


def test_update_without_api_key_keeps_the_stored_key(api: APIClient) -> None:
    endpoint_id = create(api).data["id"]
    response = api.patch(f"/api/endpoints/{endpoint_id}/", {"default_model": "fake-model"}, format="json")
    assert response.status_code == 200, response.data
    endpoint = Endpoint.objects.get(pk=endpoint_id)
    assert endpoint.default_model == "fake-model"
    assert endpoint.api_key == "sk-abc123secret"

    full = {k: v for k, v in VALID.items() if k != "api_key"}
    assert api.put(f"/api/endpoints/{endpoint_id}/", full, format="json").status_code == 200
    assert Endpoint.objects.get(pk=endpoint_id).api_key == "sk-abc123secret"


def test_update_with_a_new_key_replaces_it(api: APIClient) -> None:
    endpoint_id = create(api).data["id"]
    api.patch(f"/api/endpoints/{endpoint_id}/", {"api_key": "sk-new-key-999"}, format="json")
    assert Endpoint.objects.get(pk=endpoint_id).api_key == "sk-new-key-999"


def test_an_empty_api_key_clears_it(api: APIClient) -> None:
    endpoint_id = create(api).data["id"]
    response = api.patch(f"/api/endpoints/{endpoint_id}/", {"api_key": ""}, format="json")
    assert response.status_code == 200
    assert response.data["has_api_key"] is False
    assert Endpoint.objects.get(pk=endpoint_id).api_key == ""


@pytest.mark.parametrize(("field", "value"), [
    ("base_url", "not a url"),
    ("timeout_seconds", 0),
    ("timeout_seconds", "slow"),
    ("max_retries", -1),
    ("max_retries", 21),
    ("max_concurrency", 0),
    ("extra_headers", {"X-Team": 5}),
    ("extra_headers", ["X-Team"]),
    ("enabled", "perhaps"),
    ("name", ""),
    ("default_model", ""),
    ("frobnicate", True),
])
def test_bad_input_is_a_400_naming_the_field_and_changes_nothing(api: APIClient, field: str, value: Any) -> None:
    response = create(api, **{field: value})
    assert response.status_code == 400
    assert field in response.data, response.data
    assert not Endpoint.objects.exists()


def test_a_duplicate_name_is_a_400(api: APIClient) -> None:
    create(api)
    response = create(api)
    assert response.status_code == 400
    assert "name" in response.data


def test_a_bad_update_changes_nothing(api: APIClient) -> None:
    endpoint_id = create(api).data["id"]
    response = api.patch(f"/api/endpoints/{endpoint_id}/", {"max_retries": 99, "api_key": "sk-other"}, format="json")
    assert response.status_code == 400
    assert "max_retries" in response.data
    endpoint = Endpoint.objects.get(pk=endpoint_id)
    assert endpoint.max_retries == 3
    assert endpoint.api_key == "sk-abc123secret"


def test_list_filters_searches_orders_and_paginates(api: APIClient) -> None:
    create(api, name="beta", is_mock=True)
    create(api, name="alpha", base_url="https://api.openai.com/v1", enabled=False)
    create(api, name="gamma", default_model="llama3")
    assert [e["name"] for e in api.get("/api/endpoints/?is_mock=true").data["results"]] == ["beta"]
    assert [e["name"] for e in api.get("/api/endpoints/?enabled=false").data["results"]] == ["alpha"]
    assert [e["name"] for e in api.get("/api/endpoints/?search=openai").data["results"]] == ["alpha"]
    assert [e["name"] for e in api.get("/api/endpoints/?search=llama").data["results"]] == ["gamma"]
    assert [e["name"] for e in api.get("/api/endpoints/?ordering=-name").data["results"]] == ["gamma", "beta", "alpha"]
    page = api.get("/api/endpoints/?page=1").data
    assert page["count"] == 3
    assert "next" in page and "previous" in page


def test_deleting_an_unused_endpoint_works(api: APIClient) -> None:
    endpoint_id = create(api).data["id"]
    assert api.delete(f"/api/endpoints/{endpoint_id}/").status_code == 204
    assert not Endpoint.objects.exists()


def test_deleting_an_endpoint_a_payload_uses_is_a_409_naming_the_payload(api: APIClient) -> None:
    endpoint = make_endpoint()
    make_payload("outline", endpoint, [("user", make_block("task", "Hello {{ topic }}"))])
    response = api.delete(f"/api/endpoints/{endpoint.pk}/")
    assert response.status_code == 409
    assert "outline" in response.data["detail"]
    assert Endpoint.objects.filter(pk=endpoint.pk).exists()


def test_anonymous_requests_are_refused(client: Any) -> None:
    endpoint = make_endpoint()
    assert client.get("/api/endpoints/").status_code in (401, 403)
    assert client.post(f"/api/endpoints/{endpoint.pk}/test/").status_code in (401, 403)
