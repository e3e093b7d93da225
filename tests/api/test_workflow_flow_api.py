"""The workflows API carries a step's control flow (issue 22): when, default, for_each, as, max_parallel,
on_error and the workflow's max_parallel; bad values are 400s naming the step and the field, while what
a template or a name means is a problem (or a warning) of the check, as for blocks."""
import pytest

from runs.models import Response
from tests.factories import make_block, make_payload, make_run, make_workflow
from workflows.models import Step, Workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def check_payload(endpoint):
    return make_payload("check", endpoint, [("user", make_block("check-claim", "Is this true? {{ claim }}"))])


def _body(outline_payload, check_payload, **second):
    return {"name": "claims", "inputs": [{"name": "topic"}], "max_parallel": 8,
            "steps": [{"payload": outline_payload.pk, "output_key": "outline"},
                      {"payload": check_payload.pk, "output_key": "checked", "for_each": "outline",
                       "as": "claim", **second}]}


def test_flow_fields_are_written_and_read_back(api, outline_payload, check_payload):
    body = _body(outline_payload, check_payload, when='{{ topic != "" }}', default="none", max_parallel=2,
                 on_error="skip")
    response = api.post("/api/workflows/", body, format="json")
    assert response.status_code == 201, response.data
    assert response.data["max_parallel"] == 8
    first, second = response.data["steps"]
    assert (first["when"], first["for_each"], first["as"], first["max_parallel"], first["on_error"]) == (
        "", "", "item", None, "fail")
    assert {k: second[k] for k in ("when", "default", "for_each", "as", "max_parallel", "on_error")} == {
        "when": '{{ topic != "" }}', "default": "none", "for_each": "outline", "as": "claim", "max_parallel": 2,
        "on_error": "skip"}
    step = Step.objects.get(output_key="checked")
    assert (step.item_as, step.for_each, step.on_error, step.max_parallel) == ("claim", "outline", "skip", 2)
    assert Workflow.objects.get().max_parallel == 8
    assert response.data["problems"] == []
    flow = response.data["variable_flow"]
    assert [(node["needs"], node["level"]) for node in flow] == [([], 0), ([0], 1)]
    assert {"variable": "claim", "block": "check-claim", "source": "item"} in flow[1]["reads"]


def test_a_patch_that_omits_the_flow_fields_gives_the_defaults(api, outline_payload, check_payload):
    workflow_id = api.post("/api/workflows/", _body(outline_payload, check_payload), format="json").data["id"]
    response = api.patch(f"/api/workflows/{workflow_id}/",
                         {"steps": [{"payload": outline_payload.pk, "output_key": "outline"}]}, format="json")
    assert response.status_code == 200, response.data
    assert response.data["steps"][0]["as"] == "item"
    assert response.data["max_parallel"] == 8  # not named: kept


@pytest.mark.parametrize(
    ("step", "field"),
    [
        ({"on_error": "retry"}, "on_error"),
        ({"max_parallel": 0}, "max_parallel"),
        ({"max_parallel": 65}, "max_parallel"),
        ({"max_parallel": "many"}, "max_parallel"),
        ({"as": "two words"}, "as"),
        ({"as": ""}, "as"),
        ({"as": 3}, "as"),
        ({"when": True}, "when"),
        ({"for_each": ["a"]}, "for_each"),
        ({"default": 1}, "default"),
        ({"item_as": "claim"}, "item_as"),  # the API's name is `as`
    ],
)
def test_a_bad_flow_value_is_400_naming_the_step_and_the_field(api, outline_payload, check_payload, step, field):
    response = api.post("/api/workflows/", _body(outline_payload, check_payload, **step), format="json")
    assert response.status_code == 400, response.data
    errors = response.data["steps"]
    assert list(errors) == [1], errors  # steps[1], not steps[0]
    assert field in errors[1], errors
    assert not Workflow.objects.exists()


@pytest.mark.parametrize("value", [0, 65, None])
def test_the_workflows_max_parallel_out_of_range_is_400(api, outline_payload, check_payload, value):
    body = {**_body(outline_payload, check_payload), "max_parallel": value}
    response = api.post("/api/workflows/", body, format="json")
    assert response.status_code == 400
    assert "max_parallel" in response.data


def test_meaning_problems_are_reported_by_the_check_naming_the_field(api, outline_payload, check_payload):
    body = _body(outline_payload, check_payload, when="{{ nowhere == 1 }}", for_each="missing.items")
    response = api.post("/api/workflows/", body, format="json")
    assert response.status_code == 201, response.data  # saved with problems, like a block's unknown variable
    validation = api.get(f"/api/workflows/{response.data['id']}/validate/").data
    assert validation["valid"] is False
    located = {(p["step"], p.get("field"), p.get("variable")) for p in validation["problems"]}
    assert located == {(2, "when", "nowhere"), (2, "for_each", "missing")}


def test_a_read_of_a_skippable_output_without_default_is_a_warning_not_a_problem(api, outline_payload, endpoint):
    reader = make_payload("reader", endpoint, [("user", make_block("read-outline", "Use {{ outline }}."))])
    body = {"name": "warned", "inputs": [{"name": "topic"}],
            "steps": [{"payload": outline_payload.pk, "output_key": "outline", "when": "topic"},
                      {"payload": reader.pk, "output_key": "used"}]}
    created = api.post("/api/workflows/", body, format="json").data
    validation = api.get(f"/api/workflows/{created['id']}/validate/").data
    assert validation["valid"] is True
    assert [(w["step"], w["variable"], w["level"]) for w in validation["warnings"]] == [(2, "outline", "warning")]
    assert created["warnings"] == validation["warnings"]
    # A default answers it.
    body["steps"][0]["default"] = "(no outline)"
    api.put(f"/api/workflows/{created['id']}/", body, format="json")
    assert api.get(f"/api/workflows/{created['id']}/validate/").data["warnings"] == []


def test_a_runs_responses_carry_their_item_and_value(api, outline_payload):
    workflow = make_workflow("mapped", [("outline", outline_payload)])
    run = make_run(workflow=workflow, status="succeeded", inputs={"topic": "x"})
    common = {"run": run, "index": 0, "output_key": "outline", "payload_name": "outline", "status": "succeeded"}
    Response.objects.create(**common, item=0, output='["A", "B"]', output_json=["A", "B"])
    Response.objects.create(**common, item=1, item_value={"claim": "a"}, output="A")
    Response.objects.create(**common, item=2, item_value="b", output="B")
    detail = api.get(f"/api/runs/{run.pk}/").data
    assert [(r["index"], r["item"], r["item_value"]) for r in detail["responses"]] == [
        (0, 0, None), (0, 1, {"claim": "a"}), (0, 2, "b")]
    assert detail["steps"][0]["needs"] == []
