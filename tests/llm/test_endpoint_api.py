"""The endpoint API: the API key is write-only; writes validate; deleting a used endpoint is a 409."""
import json
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


# --- secrets stay with the server they were given for -------------------------------------------------
class _Recorder:
    """A real HTTP listener on 127.0.0.1 that records each request's headers and answers 401."""

    def __init__(self) -> None:
        import http.server
        import threading

        seen = self.headers = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                seen.append(dict(self.headers))
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"error": {"message": "who are you"}}')

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def recorder() -> Any:
    listener = _Recorder()
    yield listener
    listener.server.shutdown()
    listener.server.server_close()


def test_repointing_an_endpoint_clears_its_key_and_header_values_so_a_listener_gets_nothing(api: APIClient, recorder: Any) -> None:
    endpoint_id = create(api, extra_headers={"api-key": "azure-secret-value", "X-Team": "ml"}).data["id"]
    response = api.patch(f"/api/endpoints/{endpoint_id}/", {"base_url": recorder.url}, format="json")
    assert response.status_code == 200, response.data
    assert response.data["has_api_key"] is False and response.data["extra_headers"] == {}
    assert api.post(f"/api/endpoints/{endpoint_id}/test/", {}, format="json").status_code == 200
    assert recorder.headers, "the connectivity test reached the listener"
    sent = json.dumps(recorder.headers)
    assert "sk-abc123secret" not in sent and "azure-secret-value" not in sent


@pytest.mark.parametrize("url", ["https://127.0.0.1:8001/v1", "http://localhost:8001/v1", "http://127.0.0.1:8002/v1"])
def test_another_scheme_host_or_port_clears_the_key(api: APIClient, url: str) -> None:
    endpoint_id = create(api).data["id"]
    assert api.patch(f"/api/endpoints/{endpoint_id}/", {"base_url": url}, format="json").status_code == 200
    assert Endpoint.objects.get(pk=endpoint_id).api_key == ""
    # A key sent with the move is the new server's key: kept.
    body = {"base_url": "https://api.example.com/v1", "api_key": "sk-for-the-new-host"}
    assert api.patch(f"/api/endpoints/{endpoint_id}/", body, format="json").status_code == 200
    assert Endpoint.objects.get(pk=endpoint_id).api_key == "sk-for-the-new-host"


def test_header_values_are_write_only_and_null_keeps_a_stored_value(api: APIClient) -> None:
    response = create(api, extra_headers={"api-key": "azure-secret-value", "X-Team": "ml"})
    assert response.data["extra_headers"] == {"api-key": None, "X-Team": None}
    endpoint_id = response.data["id"]
    for url in ("/api/endpoints/", f"/api/endpoints/{endpoint_id}/"):
        assert "azure-secret-value" not in api.get(url).content.decode()
    body = {**api.get(f"/api/endpoints/{endpoint_id}/").data}
    body = {k: body[k] for k in ("name", "base_url", "default_model", "extra_headers")}
    body["extra_headers"]["X-Team"] = "research"
    assert api.put(f"/api/endpoints/{endpoint_id}/", body, format="json").status_code == 200
    assert Endpoint.objects.get(pk=endpoint_id).extra_headers == {"api-key": "azure-secret-value", "X-Team": "research"}
    # Another path on the same server keeps the secrets.
    for url in ("http://127.0.0.1:8001/v2", "HTTP://127.0.0.1:8001/other/"):
        assert api.patch(f"/api/endpoints/{endpoint_id}/", {"base_url": url}, format="json").status_code == 200
    endpoint = Endpoint.objects.get(pk=endpoint_id)
    assert endpoint.api_key == "sk-abc123secret" and endpoint.extra_headers["api-key"] == "azure-secret-value"


def test_null_for_a_header_that_has_no_stored_value_is_a_400(api: APIClient) -> None:
    response = create(api, extra_headers={"api-key": None})
    assert response.status_code == 400
    assert "api-key" in str(response.json()["extra_headers"])
    assert not Endpoint.objects.exists()


@pytest.mark.parametrize("headers", [{"X-Team": "ml\r\nX-Injected: 1"}, {"X-Team": "ml\nmore"},
                                     {"X-Team\r\nX-Injected": "1"}, {"Bad Name": "1"}])
def test_line_breaks_in_header_names_or_values_are_a_400_naming_the_field(api: APIClient, headers: dict) -> None:
    response = create(api, extra_headers=headers)
    assert response.status_code == 400
    assert "extra_headers" in response.json()
    assert not Endpoint.objects.exists()
    endpoint_id = create(api, name="ok").data["id"]
    assert api.patch(f"/api/endpoints/{endpoint_id}/", {"extra_headers": headers}, format="json").status_code == 400
    assert Endpoint.objects.get(pk=endpoint_id).extra_headers == {}
