import pytest

from payloads.models import Payload, PayloadBlock
from tests.factories import make_block, make_workflow

pytestmark = pytest.mark.django_db


def payload_body(endpoint_, *blocks, **overrides):
    body = {
        "name": "outline", "endpoint": endpoint_.pk, "model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 200,
        "stream": True, "blocks": [{"block": block.pk, "role": role} for role, block in blocks],
    }
    body.update(overrides)
    return body


def test_create_payload_with_ordered_blocks_in_one_request(api, endpoint, system_block, topic_block):
    body = payload_body(endpoint, ("system", system_block), ("user", topic_block), top_p=0.9, seed=7,
                        stop=["END"], presence_penalty=-1.5, frequency_penalty=2.0, extra_params={"logprobs": True})
    response = api.post("/api/payloads/", body, format="json")
    assert response.status_code == 201, response.data
    assert response.data["blocks"] == [
        {"block": system_block.pk, "role": "system", "block_name": "be-brief"},
        {"block": topic_block.pk, "role": "user", "block_name": "outline-task"},
    ]
    assert response.data["variables"] == ["topic"]
    payload = Payload.objects.get(name="outline")
    assert (payload.temperature, payload.top_p, payload.seed, payload.stop) == (0.2, 0.9, 7, ["END"])
    assert payload.extra_params == {"logprobs": True}
    assert [(pb.position, pb.role, pb.block_id) for pb in payload.payload_blocks.all()] == [
        (0, "system", system_block.pk), (1, "user", topic_block.pk)]


def test_update_replaces_the_block_list_whole(api, outline_payload, system_block, topic_block):
    extra = make_block("tone", "Use a {{ tone }} tone.")
    blocks = [{"block": topic_block.pk, "role": "user"}, {"block": extra.pk, "role": "user"}]
    response = api.patch(f"/api/payloads/{outline_payload.pk}/", {"blocks": blocks}, format="json")
    assert response.status_code == 200, response.data
    assert [b["block"] for b in response.data["blocks"]] == [topic_block.pk, extra.pk]
    assert response.data["variables"] == ["tone", "topic"]
    assert PayloadBlock.objects.filter(payload=outline_payload).count() == 2


def test_patch_without_blocks_keeps_them(api, outline_payload):
    response = api.patch(f"/api/payloads/{outline_payload.pk}/", {"temperature": 1.5}, format="json")
    assert response.status_code == 200
    assert len(response.data["blocks"]) == 2
    outline_payload.refresh_from_db()
    assert outline_payload.temperature == 1.5


def test_api_response_never_contains_the_endpoint_api_key(api, outline_payload):
    assert "sk-test" not in str(api.get(f"/api/payloads/{outline_payload.pk}/").content)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 1.1}, "top_p"),
        ({"presence_penalty": -2.1}, "presence_penalty"),
        ({"frequency_penalty": 3}, "frequency_penalty"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stream": "sometimes"}, "stream"),
        ({"stop": "END"}, "stop"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"endpoint": 9999}, "endpoint"),
        ({"endpoint": "local"}, "endpoint"),
        ({"extra_params": {"model": "other"}}, "extra_params"),
        ({"extra_params": {"messages": []}}, "extra_params"),
        ({"extra_params": ["not", "an", "object"]}, "extra_params"),
        ({"json_schema": {"type": "not-a-type"}}, "json_schema"),
        ({"json_schema": "string"}, "json_schema"),
        ({"blocks": [{"block": 9999, "role": "user"}]}, "blocks"),
        ({"blocks": [{"block": None, "role": "user"}]}, "blocks"),
        ({"blocks": [{"role": "user"}]}, "blocks"),
        ({"blocks": [{"block": 1, "role": "narrator"}]}, "blocks"),
        ({"blocks": [{"block": 1, "role": "user", "weight": 3}]}, "blocks"),
        ({"blocks": {"block": 1}}, "blocks"),
        ({"blocks": ["x"]}, "blocks"),
        ({"temprature": 0.3}, "temprature"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_payload_input_is_400_naming_the_field_and_changes_nothing(api, endpoint, topic_block, overrides, field):
    response = api.post("/api/payloads/", payload_body(endpoint, ("user", topic_block), **overrides), format="json")
    assert response.status_code == 400, response.data
    assert field in response.data, response.data
    assert not Payload.objects.exists()
    assert not PayloadBlock.objects.exists()


def test_nested_block_error_names_the_entry(api, endpoint, topic_block):
    body = payload_body(endpoint, ("user", topic_block))
    body["blocks"].append({"block": 9999, "role": "user"})
    response = api.post("/api/payloads/", body, format="json")
    assert response.status_code == 400
    # DRF keys list errors by the index of the bad entry (the second one here).
    assert list(response.json()["blocks"]) == ["1"]
    assert "9999" in response.json()["blocks"]["1"]["block"][0]


def test_unknown_nested_field_is_named(api, endpoint, topic_block):
    body = payload_body(endpoint)
    body["blocks"] = [{"block": topic_block.pk, "role": "user", "weight": 3}]
    response = api.post("/api/payloads/", body, format="json")
    assert response.status_code == 400
    assert "weight" in response.data["blocks"][0]


def test_duplicate_payload_name_is_refused(api, outline_payload, endpoint, topic_block):
    response = api.post("/api/payloads/", payload_body(endpoint, ("user", topic_block)), format="json")
    assert response.status_code == 400
    assert "name" in response.data
    assert Payload.objects.count() == 1


def test_failed_update_changes_neither_settings_nor_blocks(api, outline_payload, topic_block):
    response = api.patch(f"/api/payloads/{outline_payload.pk}/",
                         {"temperature": 9, "blocks": [{"block": topic_block.pk, "role": "user"}]}, format="json")
    assert response.status_code == 400
    outline_payload.refresh_from_db()
    assert outline_payload.temperature is None
    assert outline_payload.payload_blocks.count() == 2


def test_preview_renders_messages_and_counts_tokens(api, outline_payload):
    response = api.post(f"/api/payloads/{outline_payload.pk}/preview/", {"variables": {"topic": "owls"}},
                        format="json")
    assert response.status_code == 200, response.data
    assert response.data["messages"] == [
        {"role": "system", "content": "You are brief."},
        {"role": "user", "content": "Write a short outline about owls."},
    ]
    assert response.data["model"] == "gpt-4o-mini"
    # Two messages of a few tokens each plus framing: more than the framing alone, far less than 100.
    assert 10 < response.data["token_count"] < 100


def test_preview_joins_consecutive_blocks_of_one_role(api, endpoint, system_block, topic_block):
    from tests.factories import make_payload

    payload = make_payload("joined", endpoint, [("user", system_block), ("user", topic_block)])
    response = api.post(f"/api/payloads/{payload.pk}/preview/", {"variables": {"topic": "owls"}}, format="json")
    assert response.data["messages"] == [
        {"role": "user", "content": "You are brief.\n\nWrite a short outline about owls."}]


def test_preview_names_the_missing_variables(api, outline_payload):
    response = api.post(f"/api/payloads/{outline_payload.pk}/preview/", {"variables": {}}, format="json")
    assert response.status_code == 400
    assert response.data["missing"] == ["topic"]
    assert "topic" in response.data["variables"][0]


@pytest.mark.parametrize("body", [{"variables": ["topic"]}, {"variables": {"topic": "x"}, "vars": {}}, ["x"]])
def test_preview_rejects_malformed_bodies(api, outline_payload, body):
    response = api.post(f"/api/payloads/{outline_payload.pk}/preview/", body, format="json")
    assert response.status_code == 400


def test_preview_of_unknown_payload_is_404(api):
    assert api.post("/api/payloads/999/preview/", {"variables": {}}, format="json").status_code == 404


def test_deleting_a_payload_in_a_workflow_is_a_conflict_naming_it(api, outline_payload):
    make_workflow("article", [("outline", outline_payload)])
    response = api.delete(f"/api/payloads/{outline_payload.pk}/")
    assert response.status_code == 409
    assert "outline" in response.data["detail"]
    assert Payload.objects.filter(pk=outline_payload.pk).exists()


def test_renaming_a_payload_in_a_workflow_is_allowed(api, outline_payload):
    workflow = make_workflow("article", [("outline", outline_payload)])
    response = api.patch(f"/api/payloads/{outline_payload.pk}/", {"name": "outline-v2"}, format="json")
    assert response.status_code == 200
    assert response.data["used_by"] == {"workflows": [{"id": workflow.pk, "name": "article"}]}
    assert workflow.steps.get().payload.name == "outline-v2"


def test_deleting_an_unused_payload_also_removes_its_block_list(api, outline_payload):
    assert api.delete(f"/api/payloads/{outline_payload.pk}/").status_code == 204
    assert not PayloadBlock.objects.exists()


def test_payload_list_filters_and_searches(api, outline_payload, endpoint, topic_block, system_block):
    from tests.factories import make_payload

    make_payload("plain", endpoint, [("user", system_block)], stream=True)
    names = lambda query: [p["name"] for p in api.get(f"/api/payloads/{query}").data["results"]]  # noqa: E731
    assert names(f"?block={topic_block.pk}") == ["outline"]
    assert names("?stream=true") == ["plain"]
    assert names(f"?endpoint={endpoint.pk}&ordering=-name") == ["plain", "outline"]
    assert names("?search=plai") == ["plain"]
    assert names("?name=OUT") == ["outline"]
