"""The capabilities API: read with view_endpoint; set, forget and reset with change_endpoint; bad values name the field."""
from typing import Any
from urllib.parse import quote

import pytest
from rest_framework.test import APIClient

from llm import services
from llm.models import Capability, Endpoint
from tests.factories import make_endpoint
from tests.fake_llm import FakeLLM

pytestmark = pytest.mark.django_db

MODEL = "meta-llama/Llama-3.1-8B:q4"
FIELDS = {"structured_output", "stream_options", "stream_usage", "token_limit_param", "temperature", "reasoning_field"}


def base(endpoint: Endpoint) -> str:
    return f"/api/endpoints/{endpoint.pk}/capabilities/"


def learned(endpoint: Endpoint, model: str = "gpt-4o-mini") -> None:
    services.capability_learn(endpoint_id=endpoint.pk, model=model, changes={"stream_options": False},
                              evidence={"stream_options": "Unrecognized request argument supplied: stream_options"})




def test_the_list_has_every_field_who_set_it_and_what_the_server_said(api: APIClient) -> None:
    endpoint = make_endpoint()
    learned(endpoint)
    services.capability_set(endpoint=endpoint, model=MODEL, values={"temperature": False})
    response = api.get(base(endpoint))
    assert response.status_code == 200
    rows = {row["model"]: row for row in response.json()}
    assert set(rows) == {"gpt-4o-mini", MODEL}
    assert FIELDS | {"overridden", "evidence", "learned_at", "updated_at"} <= set(rows[MODEL])
    assert rows["gpt-4o-mini"]["stream_options"] is False and rows["gpt-4o-mini"]["overridden"] == []
    assert "stream_options" in rows["gpt-4o-mini"]["evidence"]["stream_options"]["said"]
    assert rows["gpt-4o-mini"]["learned_at"] is not None
    assert rows[MODEL]["temperature"] is False and rows[MODEL]["overridden"] == ["temperature"]


@pytest.mark.parametrize("path", [MODEL, quote(MODEL, safe="")])
def test_a_model_name_with_slashes_and_colons_is_one_path_segment_or_percent_encoded(api: APIClient, path: str) -> None:
    endpoint = make_endpoint()
    response = api.patch(base(endpoint) + path + "/", {"structured_output": "json_object"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["model"] == MODEL and response.json()["overridden"] == ["structured_output"]
    assert api.get(base(endpoint) + path + "/").json()["structured_output"] == "json_object"
    assert Capability.objects.get().model == MODEL


def test_patch_sets_the_fields_sent_and_null_hands_one_back_to_learning(api: APIClient) -> None:
    endpoint = make_endpoint()
    learned(endpoint)
    url = base(endpoint) + "gpt-4o-mini/"
    body = api.patch(url, {"token_limit_param": "max_completion_tokens", "reasoning_field": ""}, format="json").json()
    assert body["overridden"] == ["reasoning_field", "token_limit_param"]
    assert body["stream_options"] is False  # learned, untouched
    body = api.patch(url, {"token_limit_param": None}, format="json").json()
    assert body["overridden"] == ["reasoning_field"] and body["token_limit_param"] == "max_tokens"


def test_put_hands_back_what_a_person_had_set_and_leaves_out(api: APIClient) -> None:
    endpoint = make_endpoint()
    learned(endpoint)
    url = base(endpoint) + "gpt-4o-mini/"
    api.patch(url, {"temperature": False, "stream_usage": False}, format="json")
    body = api.put(url, {"stream_usage": False}, format="json").json()
    assert body["overridden"] == ["stream_usage"] and body["temperature"] is True
    assert body["stream_options"] is False  # learned, not a person's: kept


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"structured_output": "xml"}, "structured_output", "'xml' is not one of:"),
    ({"token_limit_param": "max_length"}, "token_limit_param", "is not one of"),
    ({"temperature": "yes"}, "temperature", "true or false"),
    ({"frobnicate": True}, "frobnicate", "Unknown field"),
])
def test_a_bad_value_or_unknown_field_is_a_400_naming_it_and_changes_nothing(
        api: APIClient, body: dict[str, Any], field: str, words: str) -> None:
    endpoint = make_endpoint()
    learned(endpoint)
    response = api.patch(base(endpoint) + "gpt-4o-mini/", {**body, "stream_usage": False}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == [field] and words in response.json()[field][0], response.json()
    row = Capability.objects.get()
    assert row.overridden == [] and row.stream_usage is True


def test_a_model_name_too_long_is_a_400(api: APIClient) -> None:
    endpoint = make_endpoint()
    response = api.patch(base(endpoint) + "m" * 201 + "/", {"temperature": False}, format="json")
    assert response.status_code == 400 and "model" in response.json()
    assert not Capability.objects.exists()


def test_delete_forgets_one_model_and_reset_every_model(api: APIClient) -> None:
    endpoint, other = make_endpoint(), make_endpoint(name="other")
    learned(endpoint)
    learned(other)
    services.capability_set(endpoint=endpoint, model=MODEL, values={"temperature": False})
    assert api.delete(base(endpoint) + MODEL + "/").status_code == 204
    assert api.delete(base(endpoint) + MODEL + "/").status_code == 404
    assert api.get(base(endpoint) + MODEL + "/").status_code == 404
    assert [row["model"] for row in api.get(base(endpoint)).json()] == ["gpt-4o-mini"]
    response = api.post(base(endpoint) + "reset/")
    assert response.status_code == 200 and response.json() == {"deleted": 1}
    assert api.get(base(endpoint)).json() == []
    assert Capability.objects.filter(endpoint=other).count() == 1


def test_a_model_named_reset_is_still_reachable(api: APIClient) -> None:
    endpoint = make_endpoint()
    learned(endpoint)
    assert api.put(base(endpoint) + "reset/", {"temperature": False}, format="json").json()["model"] == "reset"
    assert api.get(base(endpoint) + "reset/").json()["temperature"] is False
    assert api.delete(base(endpoint) + "reset/").status_code == 204
    assert list(Capability.objects.values_list("model", flat=True)) == ["gpt-4o-mini"]


def test_an_unknown_endpoint_is_a_404(api: APIClient) -> None:
    assert api.get("/api/endpoints/999/capabilities/").status_code == 404
    assert api.patch("/api/endpoints/999/capabilities/x/", {"temperature": False}, format="json").status_code == 404
    assert api.post("/api/endpoints/999/capabilities/reset/").status_code == 404


def test_reading_needs_view_and_writing_needs_change_endpoint(api_with_perms: Any) -> None:
    endpoint = make_endpoint()
    learned(endpoint)
    url = base(endpoint) + "gpt-4o-mini/"
    stranger, viewer = api_with_perms(), api_with_perms("llm.view_endpoint")
    adder = api_with_perms("llm.view_endpoint", "llm.add_endpoint", "llm.delete_endpoint")
    assert stranger.get(base(endpoint)).status_code == 403
    assert viewer.get(base(endpoint)).status_code == 200 and viewer.get(url).status_code == 200
    for client in (stranger, viewer, adder):
        assert client.patch(url, {"temperature": False}, format="json").status_code == 403
        assert client.put(url, {"temperature": False}, format="json").status_code == 403
        assert client.delete(url).status_code == 403
        assert client.post(base(endpoint) + "reset/").status_code == 403
    assert Capability.objects.get().overridden == []
    changer = api_with_perms("llm.view_endpoint", "llm.change_endpoint")
    assert changer.patch(url, {"temperature": False}, format="json").status_code == 200
    assert changer.post(base(endpoint) + "reset/").status_code == 200


def test_anonymous_requests_are_refused(client: Any) -> None:
    endpoint = make_endpoint()
    learned(endpoint)
    assert client.get(base(endpoint)).status_code in (401, 403)
    assert client.patch(base(endpoint) + "gpt-4o-mini/", {"temperature": False},
                        content_type="application/json").status_code in (401, 403)
    assert client.post(base(endpoint) + "reset/").status_code in (401, 403)
    assert Capability.objects.count() == 1


def test_after_a_reset_the_connectivity_test_learns_again(api: APIClient, fake_llm: FakeLLM) -> None:
    endpoint = make_endpoint(fake_llm.base_url)
    api.patch(base(endpoint) + "gpt-4o-mini/", {"stream_options": True}, format="json")
    fake_llm.control(reject_stream_options=True)
    api.post(f"/api/endpoints/{endpoint.pk}/test/", {}, format="json")
    assert api.get(base(endpoint) + "gpt-4o-mini/").json()["stream_options"] is True  # a person's word stands
    api.post(base(endpoint) + "reset/")
    report = api.post(f"/api/endpoints/{endpoint.pk}/test/", {}, format="json").json()
    row = api.get(base(endpoint) + "gpt-4o-mini/").json()
    assert row["stream_options"] is False and row["overridden"] == []
    assert "stream_options" in row["evidence"]["stream_options"]["said"], (row, report)


def test_the_browsable_api_renders_the_capability_routes(api: APIClient) -> None:
    endpoint = make_endpoint()
    learned(endpoint)
    for path in ("", "gpt-4o-mini/", "reset/"):
        response = api.get(base(endpoint) + path, HTTP_ACCEPT="text/html")
        assert response.status_code == (404 if path == "reset/" else 200), path
        assert "text/html" in response["Content-Type"]
