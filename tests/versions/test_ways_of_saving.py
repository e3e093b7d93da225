"""Each way of saving (API, admin, builder pages) keeps a version with its author; the versions routes."""
import pytest
from django.urls import reverse

from blocks.models import Block
from blocks.services import block_create, block_update
from payloads.models import Payload
from payloads.services import payload_create
from tests.admin.test_builders import inline_post_data
from tests.factories import make_block, make_payload
from workflows.models import Workflow
from workflows.services import workflow_create

pytestmark = pytest.mark.django_db


def test_api_saves_keep_versions_with_the_author_and_version_message(api, user, endpoint):
    created = api.post("/api/blocks/", {"name": "greet", "content": "Hi", "version_message": "new"}, format="json")
    assert created.status_code == 201 and "version_message" not in created.json()
    pk = created.json()["id"]
    api.patch(f"/api/blocks/{pk}/", {"content": "Hello"}, format="json")
    api.patch(f"/api/blocks/{pk}/", {"content": "Hello"}, format="json")
    listed = api.get(f"/api/blocks/{pk}/versions/").json()
    assert [(v["number"], v["message"], v["author"]) for v in listed] == [(2, "", "admin"), (1, "new", "admin")]
    assert set(listed[0]) == {"number", "message", "author", "created_at", "content_hash"}


def test_api_payload_and_workflow_saves_keep_versions(api, endpoint):
    block = make_block("task", "Hi")
    payload = api.post("/api/payloads/", {"name": "p", "endpoint": endpoint.pk, "blocks": [{"block": block.pk, "role": "user"}],
                                          "version_message": "why"}, format="json").json()
    workflow = api.post("/api/workflows/", {"name": "w", "steps": [{"payload": payload["id"], "output_key": "a"}]},
                        format="json").json()
    api.patch(f"/api/workflows/{workflow['id']}/", {"description": "more"}, format="json")
    assert Payload.objects.get().versions.get().message == "why"
    assert list(Workflow.objects.get().versions.values_list("number", flat=True)) == [1, 2]
    detail = api.get(f"/api/workflows/{workflow['id']}/versions/1/").json()
    assert detail["content"]["steps"] == [{"output_key": "a", "payload_id": payload["id"], "payload": "p",
                                           "payload_version": 1}]


def test_api_version_detail_and_restore(api, user):
    block = block_create(name="greet", content="Hi")
    block_update(block=block, data={"content": "Hello"})
    one = api.get(f"/api/blocks/{block.pk}/versions/1/").json()
    assert one["content"] == {"name": "greet", "description": "", "content": "Hi"} and one["name"] == "greet"
    restored = api.post(f"/api/blocks/{block.pk}/versions/1/restore/", {"message": "back"}, format="json")
    assert restored.status_code == 200
    assert (restored.json()["number"], restored.json()["message"], restored.json()["author"]) == (
        3, "restored from v1: back", "admin")
    assert api.get(f"/api/blocks/{block.pk}/").json()["content"] == "Hi"


def test_api_unknown_version_is_a_404_that_says_so(api):
    block = block_create(name="greet", content="Hi")
    response = api.get(f"/api/blocks/{block.pk}/versions/7/")
    assert response.status_code == 404 and "no version 7" in response.json()["detail"]
    assert api.post(f"/api/blocks/{block.pk}/versions/7/restore/", {}, format="json").status_code == 404
    assert api.get(f"/api/blocks/{block.pk}/versions/{10**30}/").status_code == 404


def test_api_restore_of_a_payload_naming_a_deleted_block_is_a_400(api, endpoint):
    gone, kept = make_block("gone-block", "One."), make_block("kept", "Two.")
    payload = payload_create(name="p", endpoint=endpoint, blocks=[{"block": gone, "role": "user"}])
    api.patch(f"/api/payloads/{payload.pk}/", {"blocks": [{"block": kept.pk, "role": "user"}]}, format="json")
    assert api.delete(f"/api/blocks/{gone.pk}/").status_code == 204
    response = api.post(f"/api/payloads/{payload.pk}/versions/1/restore/", {}, format="json")
    assert response.status_code == 400 and "gone-block" in str(response.json())


def test_reading_versions_needs_view_and_restoring_needs_change(viewer_api, anonymous_versions_client):
    block = block_create(name="greet", content="Hi")
    workflow = workflow_create(name="w")
    assert viewer_api.get(f"/api/blocks/{block.pk}/versions/").status_code == 200
    assert viewer_api.get(f"/api/workflows/{workflow.pk}/versions/1/").status_code == 200
    assert viewer_api.post(f"/api/blocks/{block.pk}/versions/1/restore/", {}, format="json").status_code == 403
    assert anonymous_versions_client.get(f"/api/blocks/{block.pk}/versions/").status_code in (401, 403)


def test_reading_versions_without_view_permission_is_a_403(django_user_model):
    from rest_framework.test import APIClient

    block = block_create(name="greet", content="Hi")
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user("nobody", password="pw-for-tests-only"))
    assert client.get(f"/api/blocks/{block.pk}/versions/").status_code == 403
    assert client.get(f"/api/blocks/{block.pk}/versions/1/").status_code == 403


def test_admin_add_and_change_keep_versions_and_show_the_history(admin_client, django_user_model):
    response = admin_client.post(reverse("admin:blocks_block_add"), {"name": "greet", "description": "", "content": "Hi"})
    assert response.status_code == 302
    block = Block.objects.get()
    admin_client.post(reverse("admin:blocks_block_change", args=[block.pk]),
                      {"name": "greet", "description": "", "content": "Hello"})
    admin = django_user_model.objects.get(username="admin")
    assert [(v.number, v.created_by) for v in block.versions.order_by("number")] == [(1, admin), (2, admin)]
    page = admin_client.get(reverse("admin:blocks_block_change", args=[block.pk])).content.decode()
    assert "ae-history" in page and "<td>v2</td>" in page


def test_admin_payload_and_workflow_posts_keep_versions_with_their_inlines(admin_client, endpoint):
    first, second = make_block("first", "One."), make_block("second", "Two.")
    data = {"name": "p", "description": "", "endpoint": endpoint.pk, "model": "", "structured_retries": 2,
            "extra_params": "{}", "stop": "", "json_schema": "",
            **inline_post_data("payload_blocks", [{"block": second.pk, "role": "user", "position": 2},
                                                  {"block": first.pk, "role": "system", "position": 1}], initial=0)}
    assert admin_client.post(reverse("admin:payloads_payload_add"), data).status_code == 302
    payload = Payload.objects.get()
    assert [b["block"] for b in payload.versions.get().content["blocks"]] == ["first", "second"]
    workflow_data = {"name": "w", "description": "", "inputs": "[]",
                     **inline_post_data("steps", [{"payload": payload.pk, "output_key": "a", "position": 1}], initial=0)}
    assert admin_client.post(reverse("admin:workflows_workflow_add"), workflow_data).status_code == 302
    workflow = Workflow.objects.get()
    assert workflow.versions.get().content["steps"][0]["output_key"] == "a"
    page = admin_client.get(reverse("admin:payloads_payload_change", args=[payload.pk])).content.decode()
    assert "ae-history" in page and "<td>v1</td>" in page
    page = admin_client.get(reverse("admin:workflows_workflow_change", args=[workflow.pk])).content.decode()
    assert "ae-history" in page


def test_builder_page_posts_keep_versions_with_the_author(user_client, user, endpoint):
    assert user_client.post("/blocks/new/", {"name": "greet", "description": "", "content": "Hi"}).status_code == 302
    block = Block.objects.get()
    user_client.post(f"/blocks/{block.pk}/", {"name": "greet", "description": "", "content": "Hello"})
    assert [(v.number, v.created_by) for v in block.versions.order_by("number")] == [(1, user), (2, user)]
    payload = make_payload("p", endpoint, [("user", block)])
    assert not payload.versions.exists()
