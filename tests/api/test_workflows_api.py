import pytest

from tests.factories import make_block, make_payload, make_workflow
from workflows.models import Step, Workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def draft_payload(endpoint):
    return make_payload("draft", endpoint, [("user", make_block("expand", "Expand:\n{{ previous }} in {{ style }}"))])


def test_create_workflow_with_inputs_and_ordered_steps(api, outline_payload, draft_payload):
    body = {"name": "article", "inputs": [{"name": "topic"}, {"name": "style", "default": "prose", "description": "d"}],
            "steps": [{"payload": outline_payload.pk, "output_key": "outline"},
                      {"payload": draft_payload.pk, "output_key": "draft"}]}
    response = api.post("/api/workflows/", body, format="json")
    assert response.status_code == 201, response.data
    assert response.data["inputs"] == [{"name": "topic", "default": None, "description": None},
                                       {"name": "style", "default": "prose", "description": "d"}]
    assert [(s["payload"], s["output_key"]) for s in response.data["steps"]] == [
        (outline_payload.pk, "outline"), (draft_payload.pk, "draft")]
    assert response.data["problems"] == []
    flow = response.data["variable_flow"]
    assert flow[1]["reads"] == [{"variable": "previous", "block": "expand", "source": "step:outline"},
                                {"variable": "style", "block": "expand", "source": "input"}]
    workflow = Workflow.objects.get(name="article")
    assert [(s.position, s.output_key) for s in workflow.steps.all()] == [(0, "outline"), (1, "draft")]


def test_workflow_with_unprovided_variables_is_saved_and_its_problems_are_listed(api, outline_payload, draft_payload):
    body = {"name": "article", "inputs": [],
            "steps": [{"payload": draft_payload.pk, "output_key": "draft"},
                      {"payload": outline_payload.pk, "output_key": "outline"}]}
    response = api.post("/api/workflows/", body, format="json")
    assert response.status_code == 201
    workflow_id = response.data["id"]
    validation = api.get(f"/api/workflows/{workflow_id}/validate/")
    assert validation.status_code == 200
    assert validation.data["valid"] is False
    located = {(p["step"], p.get("block"), p.get("variable")) for p in validation.data["problems"]}
    assert located == {(1, "expand", "previous"), (1, "expand", "style"), (2, "outline-task", "topic")}
    assert response.data["problems"] == validation.data["problems"]


def test_validate_says_valid_for_a_runnable_workflow(api, outline_payload):
    workflow = make_workflow("article", [("outline", outline_payload)])
    assert api.get(f"/api/workflows/{workflow.pk}/validate/").data == {"valid": True, "problems": [], "warnings": []}


def test_validate_of_unknown_workflow_is_404(api):
    assert api.get("/api/workflows/999/validate/").status_code == 404


def test_update_replaces_steps_and_keeps_inputs_when_omitted(api, outline_payload, draft_payload):
    workflow = make_workflow("article", [("outline", outline_payload)], inputs=[{"name": "topic"}])
    response = api.patch(f"/api/workflows/{workflow.pk}/",
                         {"steps": [{"payload": draft_payload.pk, "output_key": "draft"}]}, format="json")
    assert response.status_code == 200, response.data
    assert [s["output_key"] for s in response.data["steps"]] == ["draft"]
    assert [i["name"] for i in response.data["inputs"]] == ["topic"]
    assert Step.objects.filter(workflow=workflow).count() == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"inputs": "topic"}, "inputs"),
        ({"inputs": [{"name": "two words"}]}, "inputs"),
        ({"inputs": [{"name": "previous"}]}, "inputs"),
        ({"inputs": [{"name": "topic"}, {"name": "topic"}]}, "inputs"),
        ({"inputs": [{"name": "topic", "type": "str"}]}, "inputs"),
        ({"inputs": [{"name": "topic", "default": 3}]}, "inputs"),
        ({"inputs": [{}]}, "inputs"),
        ({"steps": [{"payload": 9999, "output_key": "x"}]}, "steps"),
        ({"steps": [{"payload": "outline", "output_key": "x"}]}, "steps"),
        ({"steps": [{"output_key": "x"}]}, "steps"),
        ({"steps": [{"payload": 1, "output_key": "not valid"}]}, "steps"),
        ({"steps": [{"payload": 1, "output_key": "previous"}]}, "steps"),
        ({"steps": [{"payload": 1, "output_key": "x", "retries": 3}]}, "steps"),
        ({"steps": {"payload": 1}}, "steps"),
        ({"name": None}, "name"),
        ({"stepz": []}, "stepz"),
    ],
)
def test_bad_workflow_input_is_400_naming_the_field_and_changes_nothing(api, outline_payload, overrides, field):
    body = {"name": "article", "inputs": [{"name": "topic"}],
            "steps": [{"payload": outline_payload.pk, "output_key": "outline"}], **overrides}
    # Ids in the table refer to the fixture payload where they mean "an existing payload".
    for step in body["steps"] if isinstance(body["steps"], list) else []:
        if step.get("payload") == 1:
            step["payload"] = outline_payload.pk
    response = api.post("/api/workflows/", body, format="json")
    assert response.status_code == 400, response.data
    assert field in response.data, response.data
    assert not Workflow.objects.exists()
    assert not Step.objects.exists()


def test_duplicate_workflow_name_is_refused(api, outline_payload):
    make_workflow("article", [("outline", outline_payload)])
    response = api.post("/api/workflows/", {"name": "article"}, format="json")
    assert response.status_code == 400
    assert "name" in response.data


def test_failed_update_keeps_the_old_steps(api, outline_payload):
    workflow = make_workflow("article", [("outline", outline_payload)])
    response = api.put(f"/api/workflows/{workflow.pk}/",
                       {"name": "renamed", "steps": [{"payload": 9999, "output_key": "x"}]}, format="json")
    assert response.status_code == 400
    workflow.refresh_from_db()
    assert workflow.name == "article"
    assert [s.output_key for s in workflow.steps.all()] == ["outline"]


def test_deleting_a_workflow_removes_its_steps_but_not_its_payloads(api, outline_payload):
    workflow = make_workflow("article", [("outline", outline_payload)])
    assert api.delete(f"/api/workflows/{workflow.pk}/").status_code == 204
    assert not Step.objects.exists()
    outline_payload.refresh_from_db()


def test_workflow_list_filters_and_searches(api, outline_payload, draft_payload, topic_block):
    make_workflow("article", [("outline", outline_payload)])
    make_workflow("expander", [("draft", draft_payload)])
    names = lambda query: [w["name"] for w in api.get(f"/api/workflows/{query}").data["results"]]  # noqa: E731
    assert names(f"?payload={draft_payload.pk}") == ["expander"]
    assert names(f"?block={topic_block.pk}") == ["article"]
    assert names("?search=expand") == ["expander"]
    assert names("?ordering=-name") == ["expander", "article"]
    assert names("?name=ART") == ["article"]
