"""Export a workflow, import it elsewhere: round trips, reuse, suffixed names, and never a key."""
import io
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from blocks.models import Block
from llm.models import Endpoint
from payloads.models import Payload
from tests.factories import make_block, make_endpoint
from workflows.models import Workflow
from workflows.portability import FORMAT, FORMAT_VERSION, workflow_export, workflow_import
from workflows.services import workflow_snapshot

pytestmark = pytest.mark.django_db


def _shape(workflow: Workflow) -> dict:
    """What makes two workflows the same, without ids."""
    snapshot = workflow_snapshot(workflow)
    for step in snapshot["steps"]:
        step["payload"].pop("id")
        step["payload"].pop("endpoint_id")
    snapshot["workflow"].pop("id")
    return snapshot


def _wipe() -> None:
    Workflow.objects.all().delete()
    Payload.objects.all().delete()
    Block.objects.all().delete()


def test_export_is_one_versioned_document_without_any_key(chain):
    endpoint = chain["endpoint"]
    endpoint.extra_headers = {"Authorization": "Bearer header-secret"}
    endpoint.save()
    document = workflow_export(chain["workflow"])
    text = json.dumps(document)
    assert document["format"] == FORMAT and document["version"] == FORMAT_VERSION
    assert "sk-secret-never-exported" not in text and endpoint.api_key_encrypted not in text
    assert "header-secret" not in text and "api_key" not in text
    assert document["endpoints"] == [{"name": "local", "base_url": endpoint.base_url,
                                      "default_model": endpoint.default_model}]
    assert [s["payload"] for s in document["workflow"]["steps"]] == ["outline", "summary"]
    assert {b["name"] for b in document["blocks"]} == {"outline-prompt", "house-style", "summary-prompt"}


def test_export_wipe_import_gives_the_same_workflow(chain):
    before = _shape(chain["workflow"])
    document = json.loads(json.dumps(workflow_export(chain["workflow"])))
    _wipe()
    report = workflow_import(document=document)
    assert _shape(report.workflow) == before
    assert {i["action"] for i in report.items if i["kind"] != "endpoint"} == {"created"}
    assert report.as_dict()["created"] == 6 and report.as_dict()["reused"] == 1  # the endpoint


def test_importing_twice_reuses_everything(chain):
    document = workflow_export(chain["workflow"])
    first = workflow_import(document=document)
    second = workflow_import(document=document)
    assert first.workflow.pk == second.workflow.pk == chain["workflow"].pk
    assert {i["action"] for i in second.items} == {"reused"}
    assert Workflow.objects.count() == 1 and Payload.objects.count() == 2 and Block.objects.count() == 3


def test_a_different_block_of_the_same_name_is_imported_under_a_suffixed_name(chain):
    document = workflow_export(chain["workflow"])
    block = Block.objects.get(name="house-style")
    block.content = "You are verbose."
    block.save()
    report = workflow_import(document=document)
    imported = Block.objects.get(name="house-style (2)")
    assert imported.content == "You are terse." and Block.objects.get(name="house-style").content == "You are verbose."
    # The payload using it differs too, so it and the workflow come in under suffixed names.
    assert report.workflow.name == "article (2)"
    outline = report.workflow.steps.first().payload
    assert outline.name == "outline (2)" and next(pb.block for pb in outline.payload_blocks.all()) == imported
    item = next(i for i in report.items if i["kind"] == "block" and i["exported_name"] == "house-style")
    assert item == {"kind": "block", "exported_name": "house-style", "name": "house-style (2)",
                    "action": "created", "id": str(imported.pk)}
    # And a second import finds the suffixed copies identical.
    again = workflow_import(document=document)
    assert again.workflow == report.workflow and {i["action"] for i in again.items} == {"reused"}


def test_a_missing_endpoint_is_an_error_naming_it_and_nothing_is_created(chain):
    document = workflow_export(chain["workflow"])
    _wipe()
    Endpoint.objects.all().delete()
    with pytest.raises(ValidationError) as error:
        workflow_import(document=document)
    assert "No endpoint named 'local'" in str(error.value.message_dict["endpoints"])
    assert Block.objects.count() == 0


def test_a_missing_endpoint_can_be_created_disabled_and_without_a_key(chain):
    document = workflow_export(chain["workflow"])
    _wipe()
    Endpoint.objects.all().delete()
    report = workflow_import(document=document, create_missing_endpoints=True)
    endpoint = Endpoint.objects.get(name="local")
    assert endpoint.enabled is False and endpoint.has_api_key is False
    assert report.items[0]["action"] == "created disabled, without a key"


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d.update(format="other"), "format"),
    (lambda d: d.update(version=99), "version"),
    (lambda d: d["workflow"]["steps"].append({"payload": "nope", "output_key": "x"}), "workflow.steps[2].payload"),
    (lambda d: d["payloads"][0]["blocks"].append({"block": "nope"}), "payloads[0].blocks[2]"),
    (lambda d: d["payloads"][0].update(api_key="sk"), "payloads[0]"),
])
def test_a_malformed_document_is_refused_naming_the_place(chain, change, field):
    document = workflow_export(chain["workflow"])
    change(document)
    with pytest.raises(ValidationError) as error:
        workflow_import(document=document)
    assert field in error.value.message_dict


def test_the_api_exports_and_imports(chain, user):
    api = APIClient()
    api.force_authenticate(user)
    response = api.get(f"/api/workflows/{chain['workflow'].pk}/export/")
    assert response.status_code == 200 and "sk-secret" not in response.content.decode()
    document = response.json()
    _wipe()
    imported = api.post("/api/workflows/import/", {"document": document}, format="json")
    assert imported.status_code == 201
    body = imported.json()
    assert body["workflow"]["name"] == "article" and body["created"] == 6
    again = api.post("/api/workflows/import/", {"document": document}, format="json").json()
    assert again["created"] == 0 and again["workflow"]["id"] == body["workflow"]["id"]


def test_the_api_refuses_a_bad_document_with_a_400_naming_the_field(user, db):
    api = APIClient()
    api.force_authenticate(user)
    response = api.post("/api/workflows/import/", {"document": {"format": "x"}}, format="json")
    assert response.status_code == 400 and "format" in response.json()


def test_the_api_needs_auth_and_add_permissions(chain, client_with_perms, django_user_model):
    anonymous = APIClient()
    assert anonymous.get(f"/api/workflows/{chain['workflow'].pk}/export/").status_code in (401, 403)
    assert anonymous.post("/api/workflows/import/", {}, format="json").status_code in (401, 403)
    viewer = django_user_model.objects.create_user("viewer")
    from django.contrib.auth.models import Permission
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_workflow", "add_workflow"]))
    api = APIClient()
    api.force_authenticate(viewer)
    assert api.get(f"/api/workflows/{chain['workflow'].pk}/export/").status_code == 200
    assert api.post("/api/workflows/import/", {"document": {}}, format="json").status_code == 403


def test_the_commands_export_to_a_file_and_import_it(chain, tmp_path):
    path = tmp_path / "article.json"
    call_command("export_workflow", "article", "-o", str(path), stderr=io.StringIO())
    assert json.loads(path.read_text())["workflow"]["name"] == "article"
    _wipe()
    out = io.StringIO()
    call_command("import_workflow", str(path), stdout=out)
    assert "created  block     'house-style'" in out.getvalue()
    assert "Workflow 'article'" in out.getvalue() and "6 created, 1 reused" in out.getvalue()


def test_the_commands_say_what_is_wrong(chain, tmp_path):
    with pytest.raises(CommandError, match="No workflow named 'nope'"):
        call_command("export_workflow", "nope")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_workflow", str(bad))
    bad.write_text(json.dumps({"format": "x"}))
    with pytest.raises(CommandError, match="format"):
        call_command("import_workflow", str(bad))


def test_the_builder_downloads_and_uploads_an_export(user_client, chain):
    response = user_client.get(f"/workflows/{chain['workflow'].pk}/export/")
    assert response["Content-Disposition"] == 'attachment; filename="article.workflow.json"'
    make_block("house-style-other", "x")
    Block.objects.filter(name="house-style").update(content="changed")
    upload = io.BytesIO(response.content)
    upload.name = "article.workflow.json"
    page = user_client.post("/workflows/import/", {"file": upload})
    html = page.content.decode()
    assert page.status_code == 200 and "house-style (2)" in html and 'data-action="reused"' in html


def test_the_builder_shows_an_upload_error_next_to_the_file_field(user_client, chain):
    upload = io.BytesIO(b"{}")
    upload.name = "x.json"
    html = user_client.post("/workflows/import/", {"file": upload}).content.decode()
    assert 'id="import-errors"' in html and "Not a workflow export" in html
    make_endpoint(name="unused")
