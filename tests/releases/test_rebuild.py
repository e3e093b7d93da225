"""Runs made before releases get one from their own snapshots, by the data migration (runs 0004)."""
import datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from core.versioning import content_hash
from releases.models import Release
from releases.rebuild import MESSAGE
from runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)
BEFORE = [("runs", "0003_run_label_run_release")]


def migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets or executor.loader.graph.leaf_nodes())


@pytest.fixture
def old():
    """The models as they were before releases were filled in (runs carried their snapshot)."""
    migrate(BEFORE)
    yield MigrationExecutor(connection).loader.project_state(BEFORE).apps
    migrate(None)


def versioned(old, model: str, owner: str, subject, number: int, content: dict, at) -> None:
    app = {"block": "blocks", "payload": "payloads", "workflow": "workflows"}[owner]
    version = old.get_model(app, model).objects.create(**{owner: subject}, name=subject.name, number=number,
                                                       content=content, content_hash=content_hash(content))
    version.__class__.objects.filter(pk=version.pk).update(created_at=at)


def tree(old, text: str) -> dict:
    return {"workflow": {"id": None, "name": "story"}, "inputs": [{"name": "topic"}],
            "steps": [{"index": 0, "output_key": "text", "payload": {"id": None, "name": "writer"},
                       "blocks": [{"block": "tone", "role": "user", "content": text}]}]}


def test_old_runs_with_one_tree_share_a_release_naming_the_versions_found_by_content(old):
    now = timezone.now()
    Block = old.get_model("blocks", "Block")
    tone = Block.objects.create(name="tone", content="Briskly {{ topic }}.")
    versioned(old, "BlockVersion", "block", tone, 1, {"name": "tone", "description": "", "content": "Calmly {{ topic }}."},
              now - datetime.timedelta(days=3))
    versioned(old, "BlockVersion", "block", tone, 2, {"name": "tone", "description": "", "content": "Briskly {{ topic }}."},
              now - datetime.timedelta(days=1))
    Workflow = old.get_model("workflows", "Workflow")
    workflow = Workflow.objects.create(name="story", inputs=[{"name": "topic"}])
    OldRun = old.get_model("runs", "Run")
    calm, briskly = tree(old, "Calmly {{ topic }}."), tree(old, "Briskly {{ topic }}.")
    ids = [OldRun.objects.create(workflow=workflow, workflow_name="story", snapshot=snapshot).pk
           for snapshot in (calm, calm, briskly)]
    gone = OldRun.objects.create(workflow=None, workflow_name="gone", snapshot={}).pk
    long = "Be calm. " * 100
    old.get_model("runs", "Response").objects.create(
        run_id=ids[0], index=0, output_key="text", payload_name="writer", status="succeeded",
        messages=[{"role": "system", "content": long}], output=long)
    migrate(None)
    response = Run.objects.get(pk=ids[0]).responses.get()  # packed by runs 0011, read back as it was
    assert response.messages == [{"role": "system", "content": long}] and response.output == long
    first, second, third = (Run.objects.select_related("release").get(pk=pk) for pk in ids)
    assert first.release_id == second.release_id != third.release_id
    assert (first.release.number, third.release.number, first.release.message) == (1, 2, MESSAGE)
    assert first.release.snapshot == calm and third.snapshot == briskly  # a run reads its release's snapshot
    assert [v.number for v in first.release.block_versions.all()] == [1]
    assert [v.number for v in third.release.block_versions.all()] == [2]
    orphan = Run.objects.get(pk=gone)
    assert orphan.release.workflow_id is None and orphan.release.workflow_name == "gone"
    assert orphan.release.snapshot["steps"] == []
    assert Release.objects.count() == 3 and not Run.objects.filter(release__isnull=True).exists()
