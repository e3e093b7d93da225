"""Every save through the services keeps a version; identical saves keep none; restore saves an old one anew."""
import pytest
from django.apps import apps
from django.core.exceptions import ValidationError

from blocks.models import Block, BlockVersion
from blocks.services import block_create, block_delete, block_update, block_version_restore, block_versions_initial
from core.versioning import content_hash
from payloads.models import PayloadVersion
from payloads.services import payload_create, payload_update, payload_version_restore, payload_versions_initial
from tests.factories import make_block, make_payload, make_workflow
from workflows.models import WorkflowVersion
from workflows.portability import workflow_export, workflow_import
from workflows.services import (
    workflow_create,
    workflow_delete,
    workflow_update,
    workflow_version_restore,
    workflow_versions_initial,
)

pytestmark = pytest.mark.django_db


def numbers(obj) -> list[int]:  # type: ignore[no-untyped-def]
    return list(obj.versions.order_by("number").values_list("number", flat=True))


def test_create_keeps_v1_and_an_identical_save_keeps_nothing(user):
    block = block_create(name="greet", content="Hi {{ name }}", user=user, message="first")
    block_update(block=block, data={"content": "Hi {{ name }}"}, user=user)
    assert numbers(block) == [1]
    v1 = block.versions.get()
    assert (v1.name, v1.message, v1.created_by, v1.content) == (
        "greet", "first", user, {"name": "greet", "description": "", "content": "Hi {{ name }}"})
    assert v1.content_hash == content_hash(v1.content) and len(v1.content_hash) == 64


def test_a_changed_save_keeps_the_next_version_with_its_message():
    block = block_create(name="greet", content="Hi")
    block_update(block=block, data={"description": "opens"}, message="explain it")
    block_update(block=block, data={"name": "greeting"})
    assert numbers(block) == [1, 2, 3]
    latest = block.versions.get(number=3)
    assert latest.name == "greeting" and latest.content["description"] == "opens" and latest.created_by is None
    assert block.versions.get(number=2).message == "explain it"


def test_a_failed_save_keeps_no_version():
    block = block_create(name="greet", content="Hi")
    with pytest.raises(ValidationError):
        block_update(block=block, data={"content": "Hi {{ name"})
    assert numbers(block) == [1]


def test_a_payload_version_names_its_blocks_in_order_with_their_versions_then(endpoint):
    system = block_create(name="system", content="Be terse.")
    task = block_create(name="task", content="Write about {{ topic }}.")
    block_update(block=task, data={"content": "Write on {{ topic }}."})
    payload = payload_create(name="outline", endpoint=endpoint, temperature=0.3,
                             blocks=[{"block": system, "role": "system"}, {"block": task, "role": "user"}])
    content = payload.versions.get().content
    assert content["endpoint"] == "local" and content["temperature"] == 0.3 and content["model"] == ""
    assert content["blocks"] == [
        {"block_id": system.pk, "block": "system", "role": "system", "block_version": 1},
        {"block_id": task.pk, "block": "task", "role": "user", "block_version": 2},
    ]
    # A block's new version does not make a payload version; the payload's next save records it.
    block_update(block=system, data={"content": "Be brief."})
    assert numbers(payload) == [1]
    payload_update(payload=payload, data={})
    assert numbers(payload) == [1, 2]
    assert payload.versions.get(number=2).content["blocks"][0]["block_version"] == 2


def test_a_workflow_version_names_its_steps_and_payload_versions(endpoint):
    block = block_create(name="task", content="Write about {{ topic }}.")
    payload = payload_create(name="outline", endpoint=endpoint, blocks=[{"block": block, "role": "user"}])
    payload_update(payload=payload, data={"temperature": 0.5})
    workflow = workflow_create(name="article", inputs=[{"name": "topic"}],
                               steps=[{"payload": payload, "output_key": "outline"}])
    assert workflow.versions.get().content == {
        "name": "article", "description": "", "inputs": [{"name": "topic"}],
        "steps": [{"output_key": "outline", "payload_id": payload.pk, "payload": "outline", "payload_version": 2}],
    }
    workflow_update(workflow=workflow, data={"description": "same steps"},
                    steps=[{"payload": payload, "output_key": "outline"}])
    workflow_update(workflow=workflow, data={}, steps=[{"payload": payload, "output_key": "outline"}])
    assert numbers(workflow) == [1, 2]


def test_restoring_a_block_saves_its_old_content_as_a_new_version(user):
    block = block_create(name="greet", content="Hi {{ name }}")
    block_update(block=block, data={"name": "hello", "content": "Hello {{ name }}"})
    restored = block_version_restore(version=block.versions.get(number=1), user=user, message="too formal")
    assert (restored.name, restored.content) == ("greet", "Hi {{ name }}")
    v3 = block.versions.get(number=3)
    assert (v3.message, v3.created_by) == ("restored from v1: too formal", user)
    assert v3.content_hash == block.versions.get(number=1).content_hash


def test_restoring_a_payload_brings_back_settings_and_blocks_in_order(endpoint):
    first, second = make_block("first", "One."), make_block("second", "Two.")
    payload = payload_create(name="p", endpoint=endpoint, temperature=0.1,
                             blocks=[{"block": first, "role": "system"}, {"block": second, "role": "user"}])
    payload_update(payload=payload, data={"temperature": 0.9}, blocks=[{"block": second, "role": "user"}])
    payload_version_restore(version=payload.versions.get(number=1))
    payload.refresh_from_db()
    assert payload.temperature == 0.1
    assert [(pb.block.name, pb.role) for pb in payload.payload_blocks.all()] == [("first", "system"), ("second", "user")]
    assert payload.versions.get(number=3).message == "restored from v1"


def test_restoring_a_payload_whose_block_was_deleted_names_the_block(endpoint):
    gone, kept = make_block("gone-block", "One."), make_block("kept", "Two.")
    payload = payload_create(name="p", endpoint=endpoint, blocks=[{"block": gone, "role": "user"}])
    payload_update(payload=payload, data={}, blocks=[{"block": kept, "role": "user"}])
    block_delete(block=gone)
    with pytest.raises(ValidationError, match="gone-block"):
        payload_version_restore(version=payload.versions.get(number=1))
    assert numbers(payload) == [1, 2]


def test_restoring_a_workflow_whose_payload_was_deleted_names_the_payload(endpoint):
    block = make_block("task", "Hi.")
    old, new = make_payload("old-payload", endpoint, [("user", block)]), make_payload("new", endpoint, [("user", block)])
    workflow = workflow_create(name="w", steps=[{"payload": old, "output_key": "a"}])
    workflow_update(workflow=workflow, data={}, steps=[{"payload": new, "output_key": "a"}])
    old.delete()
    with pytest.raises(ValidationError, match="old-payload"):
        workflow_version_restore(version=workflow.versions.get(number=1))
    workflow_update(workflow=workflow, data={}, steps=[])
    workflow_version_restore(version=workflow.versions.get(number=2))
    assert [step.payload for step in workflow.steps.all()] == [new]


def test_versions_of_a_deleted_object_stay_readable(endpoint):
    block = block_create(name="short-lived", content="Bye.")
    workflow = workflow_create(name="w")
    block_delete(block=block)
    workflow_delete(workflow=workflow)
    version = BlockVersion.objects.get(name="short-lived")
    assert version.block is None and version.content["content"] == "Bye."
    assert WorkflowVersion.objects.get(name="w").workflow is None
    with pytest.raises(ValidationError, match="no longer exists"):
        block_version_restore(version=version)


def test_an_import_keeps_a_version_of_what_it_creates(endpoint, user):
    block = block_create(name="task", content="Hi {{ topic }}")
    payload = payload_create(name="p", endpoint=endpoint, blocks=[{"block": block, "role": "user"}])
    workflow = workflow_create(name="w", inputs=[{"name": "topic"}], steps=[{"payload": payload, "output_key": "a"}])
    document = workflow_export(workflow)
    block_update(block=block, data={"content": "Hello {{ topic }}"})  # the import then makes a block of its own
    report = workflow_import(document=document, user=user)
    imported = report.workflow
    assert imported.pk != workflow.pk
    assert imported.versions.get().message == "imported" and imported.versions.get().created_by == user
    new_block = Block.objects.exclude(pk=block.pk).get()
    assert new_block.versions.get().message == "imported"


def test_the_data_migration_gives_every_object_without_versions_its_v1(endpoint):
    # Built with the ORM, as before versions existed: no versions yet.
    block = make_block("task", "Hi {{ topic }}")
    payload = make_payload("p", endpoint, [("user", block)])
    workflow = make_workflow("w", [("a", payload)])
    assert not BlockVersion.objects.exists()
    for step in (block_versions_initial, payload_versions_initial, workflow_versions_initial):
        step(registry=apps)
        step(registry=apps)  # a second run adds nothing
    assert [v.message for v in (block.versions.get(), payload.versions.get(), workflow.versions.get())] == [
        "initial version"] * 3
    assert payload.versions.get().content["blocks"][0]["block_version"] == 1
    assert workflow.versions.get().content["steps"][0]["payload_version"] == 1
    # The migration's v1 is what the services would write: saving unchanged makes no v2.
    payload_update(payload=payload, data={})
    assert PayloadVersion.objects.filter(payload=payload).count() == 1
