"""Export and import with history (issue 17): versions travel, ids are rewritten, old versions restore
at the destination, a second import writes nothing, and a bad history is refused naming its place."""
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from blocks.models import Block, BlockVersion
from blocks.services import block_create, block_update, block_version_content, block_version_restore
from core.versioning import content_hash
from payloads.models import Payload, PayloadVersion
from payloads.services import payload_create, payload_update, payload_version_restore
from tests.factories import make_block, make_endpoint
from workflows.models import Workflow, WorkflowVersion
from workflows.portability import FORMAT_VERSION, workflow_export, workflow_import
from workflows.services import workflow_create, workflow_update, workflow_version_restore

pytestmark = pytest.mark.django_db


@pytest.fixture
def tree(user) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A workflow whose block, payload and workflow each have several versions, all saved by `user`."""
    endpoint = make_endpoint(name="local", api_key="sk-secret-never-exported",
                             extra_headers={"X-Team": "header-secret"})
    greet = block_create(name="greet", content="Hello {{ topic }}.", user=user, message="first")
    style = block_create(name="style", content="You are terse.", user=user)
    block_update(block=greet, data={"content": "Hi {{ topic }}!"}, user=user, message="shorter")
    opener = payload_create(name="opener", endpoint=endpoint, blocks=[{"block": greet, "role": "user"}], user=user,
                            message="first")
    payload_update(payload=opener, data={"temperature": 0.3}, user=user, message="with style",
                   blocks=[{"block": style, "role": "system"}, {"block": greet, "role": "user"}])
    workflow = workflow_create(name="greeting", inputs=[{"name": "topic"}], user=user, message="first",
                               steps=[{"payload": opener, "output_key": "text"}])
    workflow_update(workflow=workflow, data={"description": "Says hello."}, user=user, message="describe it")
    # Later than the payload's last version: its history names style by an old name and greet at v2.
    block_update(block=style, data={"name": "house-style"}, user=user, message="clearer name")
    block_update(block=greet, data={"content": "Hey {{ topic }}!"}, user=user, message="friendlier")
    return {"endpoint": endpoint, "greet": greet, "style": style, "opener": opener, "workflow": workflow}


def _document(tree: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(workflow_export(tree["workflow"], with_history=True)))


def _wipe() -> None:
    Workflow.objects.all().delete()
    Payload.objects.all().delete()
    Block.objects.all().delete()


def _version_count() -> int:
    """Versions of objects that exist (a deleted object's versions stay, unlinked)."""
    return (BlockVersion.objects.filter(block__isnull=False).count()
            + PayloadVersion.objects.filter(payload__isnull=False).count()
            + WorkflowVersion.objects.filter(workflow__isnull=False).count())


def _version_ids() -> set[tuple[str, int]]:
    return {(model.__name__, pk) for model in (BlockVersion, PayloadVersion, WorkflowVersion)
            for pk in model.objects.values_list("pk", flat=True)}


def _object_count() -> int:
    return Block.objects.count() + Payload.objects.count() + Workflow.objects.count()


def _index(items: list[dict[str, Any]], name: str) -> int:
    return next(index for index, item in enumerate(items) if item["name"] == name)


# --- Export ---------------------------------------------------------------------------------------

def test_export_with_history_lists_every_version_oldest_first(tree):
    document = _document(tree)
    assert document["version"] == 2
    greet = document["blocks"][_index(document["blocks"], "greet")]
    assert greet["id"] == tree["greet"].pk
    assert [v["number"] for v in greet["versions"]] == [1, 2, 3]
    assert [v["message"] for v in greet["versions"]] == ["first", "shorter", "friendlier"]
    assert {v["author"] for v in greet["versions"]} == {"admin"}
    assert greet["versions"][0]["content"] == {"name": "greet", "description": "", "content": "Hello {{ topic }}."}
    stored = tree["greet"].versions.get(number=1)
    assert parse_datetime(greet["versions"][0]["created_at"]) == stored.created_at
    assert greet["versions"][0]["content_hash"] == stored.content_hash
    opener = document["payloads"][0]
    assert opener["id"] == tree["opener"].pk and [v["message"] for v in opener["versions"]] == ["first", "with style"]
    assert [v["message"] for v in document["workflow"]["versions"]] == ["first", "describe it"]


def test_export_without_history_is_the_version_1_document_of_before(tree):
    document = workflow_export(tree["workflow"])
    assert document["version"] == FORMAT_VERSION == 1
    assert "versions" not in document["workflow"]
    assert all("versions" not in item and "id" not in item for item in document["blocks"] + document["payloads"])


def test_history_never_carries_a_key_its_ciphertext_or_a_header(tree):
    text = json.dumps(workflow_export(tree["workflow"], with_history=True))
    assert '"versions"' in text
    assert "sk-secret-never-exported" not in text and tree["endpoint"].api_key_encrypted not in text
    assert "header-secret" not in text and "X-Team" not in text and "api_key" not in text


# --- Import ---------------------------------------------------------------------------------------

def test_a_round_trip_into_a_fresh_installation_keeps_the_history(tree, django_user_model):
    document = _document(tree)
    old_greet_pk = tree["greet"].pk
    _wipe()
    make_block("filler", "moves the ids on")  # the destination's ids differ from the source's
    importer = django_user_model.objects.create_user("importer")
    report = workflow_import(document=document, user=importer)

    greet = Block.objects.get(name="greet")
    assert greet.pk != old_greet_pk
    exported = document["blocks"][_index(document["blocks"], "greet")]["versions"]
    versions = list(greet.versions.order_by("number"))
    assert [(v.number, v.content, v.content_hash) for v in versions] == [
        (v["number"], v["content"], v["content_hash"]) for v in exported]
    assert [v.message for v in versions] == ["first (by admin)", "shorter (by admin)", "friendlier (by admin)"]
    assert [v.created_at for v in versions] == [parse_datetime(v["created_at"]) for v in exported]
    assert {v.created_by for v in versions} == {importer}
    assert versions[-1].content == block_version_content(greet)

    opener = Payload.objects.get(name="opener")
    last = opener.versions.order_by("number").last()
    style = Block.objects.get(name="house-style")
    assert [(u["block_id"], u["block"], u["role"], u["block_version"]) for u in last.content["blocks"]] == [
        (style.pk, "style", "system", 1), (greet.pk, "greet", "user", 2)]
    assert last.content_hash == content_hash(last.content)

    workflow = report.workflow
    assert [v.number for v in workflow.versions.all()] == [1, 2]
    assert workflow.versions.last().content["steps"][0]["payload_id"] == opener.pk
    # The last versions are the current content: saving unchanged writes nothing.
    assert block_update(block=greet, data={}) and greet.versions.count() == 3
    assert workflow_update(workflow=workflow, data={}) and workflow.versions.count() == 2


def test_old_imported_versions_restore_with_this_installations_objects(tree):
    document = _document(tree)
    _wipe()
    make_block("filler", "moves the ids on")
    workflow = workflow_import(document=document).workflow
    greet, opener = Block.objects.get(name="greet"), Payload.objects.get(name="opener")

    block_version_restore(version=greet.versions.get(number=1))
    greet.refresh_from_db()
    assert greet.content == "Hello {{ topic }}." and greet.versions.last().message == "restored from v1"

    payload_version_restore(version=opener.versions.get(number=1))
    opener.refresh_from_db()
    assert [(u.block, u.role) for u in opener.payload_blocks.all()] == [(greet, "user")]
    assert opener.temperature is None and opener.versions.count() == 3

    workflow_version_restore(version=workflow.versions.get(number=1))
    workflow.refresh_from_db()
    assert workflow.description == "" and [s.payload for s in workflow.steps.all()] == [opener]


def test_importing_the_same_document_twice_creates_nothing_the_second_time(tree):
    document = _document(tree)
    objects, versions = _object_count(), _version_ids()
    workflow_import(document=document)  # into the installation it came from: all identical
    assert (_object_count(), _version_ids()) == (objects, versions)
    _wipe()
    first = workflow_import(document=document)
    assert _version_count() == len(versions)  # the history, not a v1 "imported" besides it
    objects, versions = _object_count(), _version_ids()
    second = workflow_import(document=document)
    assert second.workflow == first.workflow and {i["action"] for i in second.items} == {"reused"}
    assert (_object_count(), _version_ids()) == (objects, versions)


def test_a_suffixed_import_renames_its_history_and_forgets_numbers_of_reused_blocks(tree):
    document = _document(tree)
    block_update(block=tree["greet"], data={"content": "Changed here"})  # greet, opener, greeting come in as "(2)"
    report = workflow_import(document=document)
    greet = Block.objects.get(name="greet (2)")
    assert {v.name for v in greet.versions.all()} == {"greet (2)"}
    assert {v.content["name"] for v in greet.versions.all()} == {"greet (2)"}
    opener = Payload.objects.get(name="opener (2)")
    last = opener.versions.order_by("number").last().content
    # house-style was reused: it has its own numbering here, so the exported number means nothing.
    assert [(u["block_id"], u["block"], u["block_version"]) for u in last["blocks"]] == [
        (tree["style"].pk, "style", None), (greet.pk, "greet (2)", 2)]
    assert report.workflow.name == "greeting (2)" and report.workflow.versions.count() == 2


def test_a_version_naming_a_block_the_document_lacks_restores_with_an_error_naming_it(tree):
    document = _document(tree)
    first = document["payloads"][0]["versions"][0]
    first["content"]["blocks"][0]["block_id"] = 999999
    first["content_hash"] = content_hash(first["content"])
    _wipe()
    workflow_import(document=document)
    version = Payload.objects.get(name="opener").versions.get(number=1)
    assert version.content["blocks"][0]["block_id"] is None
    with pytest.raises(ValidationError, match="greet"):
        payload_version_restore(version=version)


def _rehash(version: dict[str, Any]) -> None:
    version["content_hash"] = content_hash(version["content"])


def _greet(document: dict[str, Any]) -> dict[str, Any]:
    return document["blocks"][_index(document["blocks"], "greet")]


def _tamper(d: dict[str, Any]) -> str:
    _greet(d)["versions"][1]["content"]["content"] = "tampered"
    return f"blocks[{_index(d['blocks'], 'greet')}].versions[1].content_hash"


def _current_differs(d: dict[str, Any]) -> str:
    _greet(d)["content"] = "Not the last version"
    return f"blocks[{_index(d['blocks'], 'greet')}].versions"


def _payload_last_differs(d: dict[str, Any]) -> str:
    d["payloads"][0]["temperature"] = 0.9
    return "payloads[0].versions"


def _numbers_go_back(d: dict[str, Any]) -> str:
    d["workflow"]["versions"][1]["number"] = 1
    return "workflow.versions[1].number"


def _unknown_content_field(d: dict[str, Any]) -> str:
    d["payloads"][0]["versions"][0]["content"]["api_key"] = "sk-x"
    _rehash(d["payloads"][0]["versions"][0])
    return "payloads[0].versions[0].content"


def _bad_reference(d: dict[str, Any]) -> str:
    d["payloads"][0]["versions"][0]["content"]["blocks"][0]["block_id"] = "7"
    _rehash(d["payloads"][0]["versions"][0])
    return "payloads[0].versions[0].content.blocks[0].block_id"


def _no_id(d: dict[str, Any]) -> str:
    del d["blocks"][0]["id"]
    return "blocks[0].id"


def _bad_time(d: dict[str, Any]) -> str:
    d["workflow"]["versions"][0]["created_at"] = "yesterday"
    return "workflow.versions[0].created_at"


def _versions_not_a_list(d: dict[str, Any]) -> str:
    d["workflow"]["versions"] = {"1": {}}
    return "workflow.versions"


def _number_too_large(d: dict[str, Any]) -> str:
    d["workflow"]["versions"][1]["number"] = 2**31
    return "workflow.versions[1].number"


def _old_name_too_long(d: dict[str, Any]) -> str:
    _greet(d)["versions"][0]["content"]["name"] = "g" * 101
    _rehash(_greet(d)["versions"][0])
    return f"blocks[{_index(d['blocks'], 'greet')}].versions[0].content.name"


def _history_in_version_1(d: dict[str, Any]) -> str:
    d["version"] = 1
    return "payloads[0]"


@pytest.mark.parametrize("change", [_tamper, _current_differs, _payload_last_differs, _numbers_go_back,
                                    _unknown_content_field, _bad_reference, _no_id, _bad_time, _versions_not_a_list,
                                    _number_too_large, _old_name_too_long, _history_in_version_1])
def test_a_bad_history_is_refused_naming_the_place_and_nothing_is_written(tree, change: Callable[[dict], str]):
    document = _document(tree)
    where = change(document)
    _wipe()
    with pytest.raises(ValidationError) as error:
        workflow_import(document=document)
    assert where in error.value.message_dict, error.value.message_dict
    assert _object_count() == 0


# --- API and commands -----------------------------------------------------------------------------

def test_the_api_exports_with_history_and_imports_it_once(tree, user):
    api = APIClient()
    api.force_authenticate(user)
    url = f"/api/workflows/{tree['workflow'].pk}/export/"
    assert api.get(url).json()["version"] == 1
    response = api.get(url, {"with_history": "1"})
    assert response.status_code == 200 and "sk-secret" not in response.content.decode()
    document = response.json()
    assert document["version"] == 2 and len(document["workflow"]["versions"]) == 2
    assert api.get(url, {"with_history": "maybe"}).status_code == 400
    versions = _version_count()
    _wipe()
    first = api.post("/api/workflows/import/", {"document": document}, format="json")
    assert first.status_code == 201 and first.json()["created"] == 4 and _version_count() == versions
    again = api.post("/api/workflows/import/", {"document": document}, format="json").json()
    assert again["created"] == 0 and _version_count() == versions


def test_the_api_refuses_a_tampered_history_with_a_400_naming_the_place(tree, user):
    api = APIClient()
    api.force_authenticate(user)
    document = _document(tree)
    where = _tamper(document)
    response = api.post("/api/workflows/import/", {"document": document}, format="json")
    assert response.status_code == 400 and where in response.json()


def test_the_commands_export_with_history_and_import_it(tree, tmp_path):
    path = tmp_path / "greeting.json"
    call_command("export_workflow", "greeting", "--with-history", "-o", str(path), stderr=io.StringIO())
    assert json.loads(path.read_text())["version"] == 2
    versions = _version_count()
    _wipe()
    out = io.StringIO()
    call_command("import_workflow", str(path), stdout=out)
    assert "4 created, 1 reused" in out.getvalue() and _version_count() == versions
    assert Block.objects.get(name="greet").versions.last().created_by is None
