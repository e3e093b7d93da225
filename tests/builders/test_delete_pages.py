"""Delete in the builders (and "used by" in the API and the admin): a confirm page, then a POST that is
refused while payloads or workflow steps use the object, and those users are named and linked."""
import re

import pytest

from blocks.models import Block
from payloads.models import Payload
from runs.models import Run
from tests.factories import make_run
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def test_a_used_block_names_its_payloads_and_workflow_steps_and_is_not_deleted(csrf_client, chain):
    outline_block = chain["blocks"][0]
    outline, workflow = chain["payloads"][0], chain["workflow"]
    page = csrf_client.get(f"/blocks/{outline_block.pk}/delete/").content.decode()
    assert f'<a href="/payloads/{outline.pk}/">outline</a>' in page
    assert f'<a href="/workflows/{workflow.pk}/">article</a>: step “outline” (outline)' in page
    assert "<form" not in page.split('class="card confirm-delete"')[1]  # nothing to confirm

    # A POST anyway (a stale tab) is refused with the same list.
    token = csrf_client.cookies["csrftoken"].value
    refused = csrf_client.post(f"/blocks/{outline_block.pk}/delete/", {"csrfmiddlewaretoken": token})
    assert refused.status_code == 409 and f'href="/payloads/{outline.pk}/"' in refused.content.decode()
    assert Block.objects.filter(pk=outline_block.pk).exists()


def test_an_unused_block_is_deleted_after_the_confirm_step(csrf_client, chain):
    spare = Block.objects.create(name="spare", content="Unused.")
    editor = csrf_client.get(f"/blocks/{spare.pk}/").content.decode()
    assert f'href="/blocks/{spare.pk}/delete/"' in editor and "/admin/blocks/block/" not in editor

    confirm = csrf_client.get(f"/blocks/{spare.pk}/delete/").content.decode()
    assert "Delete “spare”" in confirm and Block.objects.filter(pk=spare.pk).exists()  # a GET deletes nothing
    done = csrf_client.post(f"/blocks/{spare.pk}/delete/", {"csrfmiddlewaretoken": CSRF_INPUT.search(confirm)[1]})
    assert done.status_code == 302 and done["Location"] == "/blocks/"
    assert not Block.objects.filter(pk=spare.pk).exists()


def test_payloads_and_workflows_are_deleted_from_their_pages(user_client, chain):
    outline, workflow = chain["payloads"][0], chain["workflow"]
    make_run(workflow=workflow, workflow_name=workflow.name)
    page = user_client.get(f"/payloads/{outline.pk}/delete/").content.decode()
    assert f'<a href="/workflows/{workflow.pk}/">article</a>: step “outline” (outline)' in page
    assert user_client.post(f"/payloads/{outline.pk}/delete/").status_code == 409

    assert f'href="/workflows/{workflow.pk}/delete/"' in user_client.get(f"/workflows/{workflow.pk}/").content.decode()
    assert user_client.post(f"/workflows/{workflow.pk}/delete/")["Location"] == "/workflows/"
    assert not Workflow.objects.exists() and Run.objects.get().workflow_name == "article"  # runs stay

    assert f'href="/payloads/{outline.pk}/delete/"' in user_client.get(f"/payloads/{outline.pk}/").content.decode()
    assert user_client.post(f"/payloads/{outline.pk}/delete/")["Location"] == "/payloads/"
    assert not Payload.objects.filter(pk=outline.pk).exists()


def test_deleting_needs_the_delete_permission(client_with_perms, chain):
    spare = Block.objects.create(name="spare", content="Unused.")
    viewer = client_with_perms("blocks.view_block", "payloads.view_payload", "workflows.view_workflow")
    assert viewer.get(f"/blocks/{spare.pk}/delete/").status_code == 403
    assert viewer.post(f"/blocks/{spare.pk}/delete/").status_code == 403
    assert viewer.post(f"/workflows/{chain['workflow'].pk}/delete/").status_code == 403
    assert viewer.post(f"/payloads/{chain['payloads'][1].pk}/delete/").status_code == 403
    assert 'id="delete-block"' not in viewer.get(f"/blocks/{spare.pk}/").content.decode()
    assert Block.objects.filter(pk=spare.pk).exists() and Workflow.objects.exists()

    deleter = client_with_perms("blocks.view_block", "blocks.delete_block")
    assert deleter.post(f"/blocks/{spare.pk}/delete/").status_code == 302


def test_the_api_409_names_payloads_workflows_and_steps_not_link_rows(api, chain):
    outline_block, outline, workflow = chain["blocks"][0], chain["payloads"][0], chain["workflow"]
    response = api.delete(f"/api/blocks/{outline_block.pk}/")
    assert response.status_code == 409
    body = response.json()
    assert body["used_by"]["payloads"] == [{"id": outline.pk, "name": "outline"}]
    assert body["used_by"]["workflows"] == [{"id": workflow.pk, "name": "article"}]
    assert body["used_by"]["steps"] == [{"workflow": workflow.pk, "workflow_name": "article",
                                         "output_key": "outline", "payload": "outline"}]
    assert "payloads “outline”" in body["detail"] and "user:" not in body["detail"]

    response = api.delete(f"/api/payloads/{outline.pk}/")
    assert response.status_code == 409 and response.json()["used_by"]["workflows"] == [{"id": workflow.pk,
                                                                                       "name": "article"}]
    assert "“outline” of “article”" in response.json()["detail"]


def test_the_admin_delete_page_names_the_payloads_and_steps(user_client, chain):
    outline_block, outline, workflow = chain["blocks"][0], chain["payloads"][0], chain["workflow"]
    page = user_client.get(f"/admin/blocks/block/{outline_block.pk}/delete/").content.decode()
    assert f'Payload <a href="/admin/payloads/payload/{outline.pk}/change/">outline</a>' in page
    assert f'Workflow <a href="/admin/workflows/workflow/{workflow.pk}/change/">article</a>, step “outline”' in page
    assert "user: outline-prompt" not in page


def test_the_admin_payload_delete_page_names_the_workflow_steps(user_client, chain):
    outline, workflow = chain["payloads"][0], chain["workflow"]
    page = user_client.get(f"/admin/payloads/payload/{outline.pk}/delete/").content.decode()
    assert f'Workflow <a href="/admin/workflows/workflow/{workflow.pk}/change/">article</a>, step “outline”' in page
    assert "outline (outline)" not in page  # the Step row the default admin would list
