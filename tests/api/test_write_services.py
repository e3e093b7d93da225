"""The write services the API calls: full validation before saving, and all-or-nothing writes."""
import pytest
from django.core.exceptions import ValidationError

from blocks.models import Block
from blocks.services import block_create, block_update
from payloads.models import Payload, PayloadBlock
from payloads.services import payload_create, payload_update
from workflows.models import Step, Workflow
from workflows.services import workflow_create, workflow_update

pytestmark = pytest.mark.django_db


def test_block_create_refuses_a_template_that_does_not_parse():
    with pytest.raises(ValidationError) as error:
        block_create(name="broken", content="{% for x in y %}")
    assert "content" in error.value.message_dict
    assert not Block.objects.exists()


def test_block_update_refuses_fields_it_does_not_own(topic_block):
    with pytest.raises(ValidationError):
        block_update(block=topic_block, data={"id": 99})


def test_payload_create_is_all_or_nothing_when_a_block_is_invalid(endpoint, topic_block):
    with pytest.raises(ValidationError) as error:
        payload_create(name="p", endpoint=endpoint,
                       blocks=[{"block": topic_block, "role": "user"}, {"block": topic_block, "role": "narrator"}])
    assert "Block 2" in str(error.value.message_dict["blocks"])
    assert not Payload.objects.exists()
    assert not PayloadBlock.objects.exists()


def test_payload_update_keeps_the_old_blocks_when_the_new_list_is_invalid(outline_payload, topic_block):
    with pytest.raises(ValidationError):
        payload_update(payload=outline_payload, data={"name": "renamed"},
                       blocks=[{"block": topic_block, "role": "narrator"}])
    outline_payload.refresh_from_db()
    assert outline_payload.name == "outline"
    assert outline_payload.payload_blocks.count() == 2


def test_payload_create_refuses_reserved_extra_params(endpoint):
    with pytest.raises(ValidationError) as error:
        payload_create(name="p", endpoint=endpoint, extra_params={"stream": False})
    assert "extra_params" in error.value.message_dict


def test_workflow_create_refuses_bad_inputs_and_saves_nothing(outline_payload):
    with pytest.raises(ValidationError) as error:
        workflow_create(name="w", inputs=[{"name": "topic"}, {"name": "topic"}],
                        steps=[{"payload": outline_payload, "output_key": "outline"}])
    assert "inputs" in error.value.message_dict
    assert not Workflow.objects.exists()
    assert not Step.objects.exists()


def test_workflow_update_replaces_steps_in_order(outline_payload):
    workflow = workflow_create(name="w", inputs=[{"name": "topic"}],
                               steps=[{"payload": outline_payload, "output_key": "first"}])
    workflow_update(workflow=workflow, data={},
                    steps=[{"payload": outline_payload, "output_key": "a"}, {"payload": outline_payload, "output_key": "b"}])
    assert [(s.position, s.output_key) for s in workflow.steps.all()] == [(0, "a"), (1, "b")]
