"""The History page of each builder object: versions newest first, a diff against the current, restore."""
import re

import pytest

from blocks import services as block_services
from blocks.models import Block
from payloads import services as payload_services
from tests.factories import make_endpoint
from workflows import services as workflow_services

pytestmark = pytest.mark.django_db


@pytest.fixture
def block(user) -> Block:  # type: ignore[no-untyped-def]
    block = block_services.block_create(name="greeting", content="Hello {{ name }}, welcome to the show.", user=user,
                                        message="first draft")
    block_services.block_update(block=block, data={"content": "Hello {{ name }}, welcome to the big show."},
                                user=user, message="bigger")
    block_services.block_update(block=block, data={"description": "says hi"}, user=user, message="describe it")
    return block


def _csrf(client, url: str) -> str:  # type: ignore[no-untyped-def]
    page = client.get(url)
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)


def test_the_page_lists_versions_newest_first_and_diffs_the_previous_one(user_client, block):
    page = user_client.get(f"/blocks/{block.pk}/history/")
    html = page.content.decode()
    assert page.status_code == 200
    rows = re.findall(r'<tr id="version-(\d+)"', html)
    assert rows == ["3", "2", "1"]
    assert re.search(r'v3 <span class="badge" data-status="current">current</span>', html)
    assert "describe it" in html and "first draft" in html and "admin" in html
    # Default: v2 against v3; only the description differs, shown as an added word and a changed row.
    assert "v2 against the current v3" in html
    assert "<ins>says hi</ins>" in html
    assert 'data-field="content" data-changed="false"' in html
    assert f'href="/blocks/{block.pk}/"' in html  # the breadcrumb back to the block


def test_a_selected_version_shows_the_word_diff_of_the_content(user_client, block):
    html = user_client.get(f"/blocks/{block.pk}/history/?v=1").content.decode()
    assert "v1 against the current v3" in html
    assert 'data-field="content" data-changed="true"' in html
    assert "<ins>big</ins>" in html
    assert 'data-field="name" data-changed="false"' in html


def test_an_unknown_version_is_a_404(user_client, block):
    assert user_client.get(f"/blocks/{block.pk}/history/?v=9").status_code == 404
    assert user_client.post(f"/blocks/{block.pk}/history/9/restore/").status_code == 404
    assert user_client.post(f"/blocks/{block.pk}/history/{2**40}/restore/").status_code == 404
    assert block.versions.count() == 3


def test_the_page_needs_the_view_permission(client_with_perms, block):
    assert client_with_perms().get(f"/blocks/{block.pk}/history/").status_code == 403
    page = client_with_perms("blocks.view_block").get(f"/blocks/{block.pk}/history/")
    assert page.status_code == 200
    assert 'id="restore-form"' not in page.content.decode()


def test_restore_makes_a_new_version_with_its_author_and_message(user_client, user, block):
    response = user_client.post(f"/blocks/{block.pk}/history/1/restore/", {"message": "too long"})
    assert response.status_code == 302 and response["Location"] == f"/blocks/{block.pk}/history/?v=1"
    latest = block.versions.order_by("-number").first()
    assert (latest.number, latest.message, latest.created_by) == (4, "restored from v1: too long", user)
    block.refresh_from_db()
    assert (block.content, block.description) == ("Hello {{ name }}, welcome to the show.", "")
    assert "Restored v1 as v4." in user_client.get(response["Location"]).content.decode()


def test_restore_needs_the_change_permission(client_with_perms, block):
    viewer = client_with_perms("blocks.view_block")
    assert viewer.post(f"/blocks/{block.pk}/history/1/restore/").status_code == 403
    assert viewer.get(f"/blocks/{block.pk}/history/1/restore/").status_code == 403
    editor = client_with_perms("blocks.view_block", "blocks.change_block")
    assert editor.get(f"/blocks/{block.pk}/history/1/restore/").status_code == 405
    assert block.versions.count() == 3
    assert editor.post(f"/blocks/{block.pk}/history/1/restore/").status_code == 302
    assert block.versions.count() == 4


def test_restore_needs_the_csrf_token(csrf_client, block):
    url = f"/blocks/{block.pk}/history/1/restore/"
    assert csrf_client.post(url).status_code == 403
    assert block.versions.count() == 3
    token = _csrf(csrf_client, f"/blocks/{block.pk}/history/?v=1")
    assert csrf_client.post(url, {"csrfmiddlewaretoken": token}).status_code == 302
    assert block.versions.count() == 4


def test_the_builder_pages_link_to_the_history(user_client, block):
    assert f'href="/blocks/{block.pk}/history/"' in user_client.get(f"/blocks/{block.pk}/").content.decode()


def test_payload_history_lists_blocks_and_settings_and_restores(user_client, user, block):
    endpoint = make_endpoint(name="local")
    other = block_services.block_create(name="style", content="Be terse.", user=user)
    payload = payload_services.payload_create(name="hello", endpoint=endpoint, user=user, temperature=0.5,
                                              blocks=[{"block": block, "role": "user"}])
    payload_services.payload_update(payload=payload, data={"temperature": 0.9}, user=user,
                                    blocks=[{"block": other, "role": "system"}, {"block": block, "role": "user"}])
    edit = user_client.get(f"/payloads/{payload.pk}/").content.decode()
    assert f'href="/payloads/{payload.pk}/history/"' in edit
    html = user_client.get(f"/payloads/{payload.pk}/history/").content.decode()
    assert 'data-field="temperature" data-changed="true"' in html
    assert 'data-field="blocks" data-changed="true"' in html
    assert "system: style (v1)" in html and "user: greeting (v3)" in html
    assert user_client.post(f"/payloads/{payload.pk}/history/1/restore/").status_code == 302
    payload.refresh_from_db()
    assert payload.temperature == 0.5 and payload.versions.count() == 3
    assert list(payload.payload_blocks.values_list("block__name", flat=True)) == ["greeting"]


def test_workflow_history_lists_steps_and_restores(user_client, client_with_perms, user, block):
    payload = payload_services.payload_create(name="hello", endpoint=make_endpoint(name="local"), user=user,
                                              blocks=[{"block": block, "role": "user"}])
    workflow = workflow_services.workflow_create(name="flow", inputs=[{"name": "name"}], user=user,
                                                 steps=[{"payload": payload, "output_key": "greet"}])
    workflow_services.workflow_update(workflow=workflow, data={"description": "now with a second step"}, user=user,
                                      steps=[{"payload": payload, "output_key": "greet"},
                                             {"payload": payload, "output_key": "again"}])
    assert f'href="/workflows/{workflow.pk}/history/"' in user_client.get(f"/workflows/{workflow.pk}/").content.decode()
    assert client_with_perms().get(f"/workflows/{workflow.pk}/history/").status_code == 403
    html = user_client.get(f"/workflows/{workflow.pk}/history/").content.decode()
    assert 'data-field="steps" data-changed="true"' in html and "again ← hello (v1)" in html
    assert "<ins>now with a second step</ins>" in html
    assert client_with_perms("workflows.view_workflow").post(
        f"/workflows/{workflow.pk}/history/1/restore/").status_code == 403
    assert user_client.post(f"/workflows/{workflow.pk}/history/1/restore/").status_code == 302
    assert list(workflow.steps.values_list("output_key", flat=True)) == ["greet"]
    assert workflow.versions.count() == 3
