"""Exports carry a step's control flow (issue 22) and the workflow's max_parallel, with and without
history; an import refuses a bad value naming the step and the field."""
import json

import pytest
from django.core.exceptions import ValidationError

from tests.builders.test_portability import _shape, _wipe
from workflows.models import Step, Workflow
from workflows.portability import workflow_export, workflow_import
from workflows.services import workflow_update

pytestmark = pytest.mark.django_db

FLOW = {"when": "{{ audience != 'nobody' }}", "default": "(skipped)", "for_each": "outline", "item_as": "line",
        "max_parallel": 3, "on_error": "null"}


@pytest.fixture
def flowing(chain):
    """The chain with its second step a conditional map over the first's output, and a wider workflow limit."""
    workflow = chain["workflow"]
    outline, summary = chain["payloads"]
    workflow_update(workflow=workflow, data={"max_parallel": 6},
                    steps=[{"payload": outline, "output_key": "outline"},
                           {"payload": summary, "output_key": "summary", **FLOW}])
    return workflow


def test_the_export_names_only_fields_that_are_not_the_default(flowing):
    document = workflow_export(flowing)
    first, second = document["workflow"]["steps"]
    assert first == {"payload": "outline", "output_key": "outline"}
    assert second == {"payload": "summary", "output_key": "summary", "when": FLOW["when"], "default": "(skipped)",
                      "for_each": "outline", "as": "line", "max_parallel": 3, "on_error": "null"}
    assert document["workflow"]["max_parallel"] == 6


@pytest.mark.parametrize("with_history", [False, True])
def test_export_wipe_import_keeps_the_control_flow(flowing, with_history):
    before = _shape(flowing)
    document = json.loads(json.dumps(workflow_export(flowing, with_history=with_history)))
    _wipe()
    report = workflow_import(document=document)
    assert _shape(report.workflow) == before
    step = Step.objects.get(workflow=report.workflow, output_key="summary")
    assert {name: getattr(step, name) for name in FLOW} == FLOW
    assert report.workflow.max_parallel == 6
    if with_history:
        assert report.workflow.versions.last().content["steps"][1]["item_as"] == "line"


def test_importing_twice_reuses_the_workflow_and_a_different_flow_is_a_new_one(flowing):
    document = workflow_export(flowing)
    assert workflow_import(document=document).as_dict()["created"] == 0
    document["workflow"]["steps"][1]["on_error"] = "skip"
    report = workflow_import(document=document)
    assert report.workflow.name == "article (2)"
    assert Step.objects.get(workflow=report.workflow, output_key="summary").on_error == "skip"


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"on_error": "retry"}, "workflow.steps[1].on_error"),
        ({"max_parallel": 0}, "workflow.steps[1].max_parallel"),
        ({"max_parallel": 65}, "workflow.steps[1].max_parallel"),
        ({"max_parallel": True}, "workflow.steps[1].max_parallel"),
        ({"as": "two words"}, "workflow.steps[1].as"),
        ({"as": ""}, "workflow.steps[1].as"),
        ({"when": 1}, "workflow.steps[1].when"),
        ({"for_each": "x" * 201}, "workflow.steps[1].for_each"),
        ({"item_as": "line"}, "workflow.steps[1]"),
    ],
)
def test_a_bad_flow_value_is_refused_naming_the_step_and_field(chain, change, where):
    document = workflow_export(chain["workflow"])
    document["workflow"]["steps"][1].update(change)
    _wipe()
    with pytest.raises(ValidationError) as raised:
        workflow_import(document=document)
    assert list(raised.value.message_dict) == [where]
    assert not Workflow.objects.exists()


@pytest.mark.parametrize("value", [0, 65, None, "4"])
def test_a_bad_workflow_max_parallel_is_refused(chain, value):
    document = workflow_export(chain["workflow"])
    document["workflow"]["max_parallel"] = value
    with pytest.raises(ValidationError) as raised:
        workflow_import(document=document)
    assert list(raised.value.message_dict) == ["workflow.max_parallel"]


def test_a_history_whose_last_version_disagrees_on_the_flow_is_refused(flowing):
    document = workflow_export(flowing, with_history=True)
    document["workflow"]["steps"][1]["on_error"] = "skip"  # the versions still say "null"
    _wipe()
    with pytest.raises(ValidationError) as raised:
        workflow_import(document=document)
    assert list(raised.value.message_dict) == ["workflow.versions"]
