"""Runs made before releases get one from their own snapshots, by the data migration."""
import pytest
from django.apps import apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from blocks.services import block_update
from releases.models import Release
from releases.rebuild import MESSAGE, releases_from_run_snapshots
from runs.models import Run
from tests.factories import make_endpoint
from tests.releases.test_services import versioned_tree
from workflows.services import workflow_snapshot

pytestmark = pytest.mark.django_db


def old_run(workflow, **fields) -> Run:
    """A run as the code before releases made it: a snapshot and no release."""
    return Run.objects.create(workflow=workflow, workflow_name=workflow.name, snapshot=workflow_snapshot(workflow),
                              inputs={"topic": "x"}, **fields)


def test_old_runs_with_one_tree_share_a_release_naming_the_versions_found_by_content():
    workflow, tone = versioned_tree(make_endpoint())
    first, second = old_run(workflow), old_run(workflow)
    block_update(block=tone, data={"content": "Briskly {{ topic }}."})
    third = old_run(workflow)
    releases_from_run_snapshots(registry=apps)
    first.refresh_from_db(), second.refresh_from_db(), third.refresh_from_db()
    assert first.release_id == second.release_id != third.release_id
    old, new = Release.objects.get(pk=first.release_id), Release.objects.get(pk=third.release_id)
    assert (old.number, new.number, old.message) == (1, 2, MESSAGE)
    assert old.snapshot == first.snapshot and new.snapshot == third.snapshot
    assert [v.number for v in old.block_versions.all()] == [1]
    assert [v.number for v in new.block_versions.all()] == [2]
    assert old.workflow_version.number == 1 and [v.number for v in old.payload_versions.all()] == [1]


def test_a_run_of_a_deleted_workflow_and_an_empty_snapshot_still_get_a_release():
    workflow, _ = versioned_tree(make_endpoint())
    orphan = old_run(workflow)
    Run.objects.filter(pk=orphan.pk).update(workflow=None)
    empty = Run.objects.create(workflow=None, workflow_name="gone", snapshot={})
    releases_from_run_snapshots(registry=apps)
    orphan.refresh_from_db(), empty.refresh_from_db()
    assert orphan.release.workflow_id is None and orphan.release.workflow_name == "story"
    assert empty.release.snapshot["steps"] == [] and empty.release.workflow_name == "gone"
    releases_from_run_snapshots(registry=apps)  # running again changes nothing
    assert Release.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_every_existing_run_a_release():
    executor = MigrationExecutor(connection)
    executor.migrate([("runs", "0003_run_label_run_release")])
    old_apps = executor.loader.project_state([("runs", "0003_run_label_run_release")]).apps
    Block = old_apps.get_model("blocks", "Block")
    block = Block.objects.create(name="b", content="Hello {{ topic }}")
    old_apps.get_model("blocks", "BlockVersion").objects.create(
        block=block, name="b", number=1, content={"name": "b", "description": "", "content": "Hello {{ topic }}"},
        content_hash="0" * 64)
    snapshot = {"workflow": {"id": None, "name": "w"}, "inputs": [{"name": "topic"}],
                "steps": [{"index": 0, "output_key": "out", "payload": {"id": 999, "name": "p"},
                           "blocks": [{"block": "b", "role": "user", "content": "Hello {{ topic }}"}]}]}
    OldRun = old_apps.get_model("runs", "Run")
    ids = [OldRun.objects.create(workflow_name="w", snapshot=snapshot).pk for _ in range(3)]
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    runs = list(Run.objects.filter(pk__in=ids).select_related("release"))
    assert {run.release.number for run in runs} == {1} and len({run.release_id for run in runs}) == 1
    assert [v.number for v in runs[0].release.block_versions.all()] == [1]
    assert not Run.objects.filter(release__isnull=True).exists()
