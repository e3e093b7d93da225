"""The payload and workflow builder pages save through the services: each save keeps a version with its author."""
import pytest

from payloads.models import Payload
from tests.builders.test_payload_pages import _form as payload_form
from tests.builders.test_workflow_pages import _form as workflow_form
from workflows.models import Workflow

pytestmark = pytest.mark.django_db


def test_payload_page_saves_keep_versions_with_the_author(user_client, user, chain):
    assert user_client.post("/payloads/new/", payload_form(chain)).status_code == 302
    payload = Payload.objects.get(name="fresh")
    assert user_client.post(f"/payloads/{payload.pk}/", payload_form(chain, temperature="0.7")).status_code == 302
    assert user_client.post(f"/payloads/{payload.pk}/", payload_form(chain, temperature="0.7")).status_code == 302
    versions = list(payload.versions.order_by("number"))
    assert [(v.number, v.created_by, v.content["temperature"]) for v in versions] == [(1, user, 0.5), (2, user, 0.7)]
    assert [b["role"] for b in versions[-1].content["blocks"]] == ["system", "user"]


def test_workflow_page_saves_keep_versions_and_a_check_keeps_none(user_client, user, chain):
    assert user_client.post("/workflows/new/", workflow_form(chain)).status_code == 302
    workflow = Workflow.objects.get(name="essay")
    # The check applies the page's inputs and steps and rolls back: a different input list keeps no version.
    check = workflow_form(chain, workflow_id=str(workflow.pk), input_name=["topic", "audience", "tone"],
                          input_default=["", "everyone", ""], input_description=["", "", ""])
    assert user_client.post("/workflows/check/", check).status_code == 200
    assert user_client.post(f"/workflows/{workflow.pk}/", workflow_form(chain, description="why")).status_code == 302
    assert [(v.number, v.created_by, v.content["description"]) for v in workflow.versions.order_by("number")] == [
        (1, user, ""), (2, user, "why")]
