"""Releases found or written at a run's start, cut by hand, and labels moved with their log."""
import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError

from blocks.models import Block
from blocks.services import block_create, block_update
from llm.models import Endpoint
from payloads.services import payload_create
from releases.models import Label, LabelMove, Release
from releases.services import label_delete, label_set, release_cut
from runs.engine import execute_run
from runs.models import Response, Run
from runs.services import run_replay, run_start
from tests.factories import make_endpoint
from workflows.models import Workflow
from workflows.services import workflow_create, workflow_update

pytestmark = pytest.mark.django_db


def versioned_tree(endpoint: Endpoint, *, name: str = "story") -> tuple[Workflow, Block]:
    """A one-step workflow saved through the services, so every object has versions."""
    tone = block_create(name=f"{name}-tone", content="Write calmly about {{ topic }}.")
    payload = payload_create(name=f"{name}-writer", endpoint=endpoint, blocks=[{"block": tone, "role": "user"}])
    workflow = workflow_create(name=name, inputs=[{"name": "topic"}], steps=[{"payload": payload, "output_key": "text"}])
    return workflow, tone


@pytest.fixture
def tree() -> tuple[Workflow, Block]:
    return versioned_tree(make_endpoint())


def test_runs_of_an_unchanged_tree_share_one_release(tree):
    workflow, _ = tree
    first = run_start(workflow=workflow, inputs={"topic": "tides"}, user=None)
    second = run_start(workflow=workflow, inputs={"topic": "moons"}, user=None)
    assert first.release_id == second.release_id
    release = Release.objects.get()
    assert (release.number, release.workflow_id, release.cut_by_hand) == (1, workflow.pk, False)
    assert release.snapshot == first.snapshot  # the release holds exactly what the run runs


def test_a_block_edit_makes_a_new_release_naming_the_new_block_version(tree):
    workflow, tone = tree
    before = run_start(workflow=workflow, inputs={"topic": "tides"}, user=None)
    block_update(block=tone, data={"content": "Write briskly about {{ topic }}."}, message="brisker")
    after = run_start(workflow=workflow, inputs={"topic": "tides"}, user=None)
    assert before.release_id != after.release_id
    new = Release.objects.get(pk=after.release_id)
    assert new.number == 2
    assert [v.number for v in new.block_versions.all()] == [2]
    assert new.steps[0]["blocks"] == [{"block_id": tone.pk, "block_version": 2,
                                       "block_version_id": tone.versions.get(number=2).pk}]
    assert new.steps[0]["payload_version"] == 1 and new.workflow_version.number == 1
    # "which runs used block tone v3" is one query
    assert list(Run.objects.filter(release__block_versions=tone.versions.get(number=1))) == [before]
    assert list(Run.objects.filter(release__block_versions=tone.versions.get(number=2))) == [after]


def test_a_description_only_change_is_not_a_new_release(tree):
    workflow, tone = tree
    first = run_start(workflow=workflow, inputs={"topic": "tides"}, user=None)
    block_update(block=tone, data={"description": "the calm one"})
    assert run_start(workflow=workflow, inputs={"topic": "tides"}, user=None).release_id == first.release_id


def test_a_replay_points_at_the_release_of_the_tree_it_runs(tree):
    workflow, tone = tree
    source = run_start(workflow=workflow, inputs={"topic": "tides"}, user=None)
    block_update(block=tone, data={"content": "Other {{ topic }}."})
    replay = run_replay(source=source, user=None)
    assert replay.release_id != source.release_id and replay.release.snapshot == replay.snapshot


def test_cutting_by_hand_names_the_release_and_reuses_an_identical_tree(tree, django_user_model):
    workflow, _ = tree
    person = django_user_model.objects.create_user("cutter")
    release, created = release_cut(workflow=workflow, user=person, message="ready for review")
    assert created and release.cut_by_hand and release.message == "ready for review" and release.created_by == person
    again, created = release_cut(workflow=workflow, user=person, message="second try")
    assert (again.pk, created, again.message) == (release.pk, False, "ready for review")
    assert run_start(workflow=workflow, inputs={"topic": "x"}, user=None).release_id == release.pk


def test_a_workflow_with_problems_cannot_be_cut(tree):
    workflow, tone = tree
    block_update(block=tone, data={"content": "About {{ unknown }}."})
    with pytest.raises(ValidationError) as error:
        release_cut(workflow=workflow)
    assert "unknown" in str(error.value.message_dict["workflow"])
    assert not Release.objects.exists()


def test_label_moves_are_logged_append_only(tree, django_user_model):
    workflow, tone = tree
    person = django_user_model.objects.create_user("mover")
    first, _ = release_cut(workflow=workflow)
    block_update(block=tone, data={"content": "Briskly {{ topic }}."})
    second, _ = release_cut(workflow=workflow)
    label, created = label_set(workflow=workflow, name="production", release=first, user=person, reason="launch")
    assert created and label.release == first
    label_set(workflow=workflow, name="production", release=second, user=person, reason="v2 is better")
    label_set(workflow=workflow, name="production", release=second, user=person, reason="no-op")  # not a move
    label_set(workflow=workflow, name="production", release=first, user=person, reason="rollback")
    label_delete(label=Label.objects.get(workflow=workflow, name="production"), user=person, reason="retired")
    moves = list(LabelMove.objects.order_by("id"))
    assert [(m.action, m.from_release_id, m.to_release_id, m.reason) for m in moves] == [
        ("created", None, first.pk, "launch"), ("moved", first.pk, second.pk, "v2 is better"),
        ("moved", second.pk, first.pk, "rollback"), ("deleted", first.pk, None, "retired")]
    assert all(m.moved_by == person and m.label == "production" for m in moves)
    assert not Label.objects.exists()


@pytest.mark.parametrize(("name", "problem"), [("prod uction", "no spaces"), ("x" * 200, "at most 50"),
                                               ("-lead", "starting with"), ("", "not a label name")])
def test_a_bad_label_name_is_refused_naming_the_problem(tree, name, problem):
    workflow, _ = tree
    release, _ = release_cut(workflow=workflow)
    with pytest.raises(ValidationError) as error:
        label_set(workflow=workflow, name=name, release=release)
    assert problem in " ".join(error.value.message_dict["name"])
    assert not Label.objects.exists() and not LabelMove.objects.exists()


def test_a_label_cannot_point_at_another_workflows_release(tree):
    workflow, _ = tree
    other, _ = versioned_tree(Endpoint.objects.get(), name="other")
    foreign, _ = release_cut(workflow=other)
    with pytest.raises(ValidationError) as error:
        label_set(workflow=workflow, name="production", release=foreign)
    assert "belongs to another workflow" in error.value.message_dict["release"][0]
    assert not Label.objects.exists() and not LabelMove.objects.exists()


def test_starting_by_an_unknown_label_names_the_labels_there_are(tree):
    workflow, _ = tree
    release, _ = release_cut(workflow=workflow)
    label_set(workflow=workflow, name="staging", release=release)
    with pytest.raises(ValidationError) as error:
        run_start(workflow=workflow, inputs={"topic": "x"}, user=None, label="production")
    assert error.value.message_dict["label"] == ["“story” has no label “production”; its labels: staging."]
    assert not Run.objects.exists()


def test_versions_of_a_deleted_block_stay_readable_from_the_runs_that_used_them(tree):
    workflow, tone = tree
    run = run_start(workflow=workflow, inputs={"topic": "tides"}, user=None)
    other = block_create(name="other", content="Plain {{ topic }}.")
    payload = workflow.steps.get().payload
    from payloads.services import payload_update
    payload_update(payload=payload, data={}, blocks=[{"block": other, "role": "user"}])
    tone.delete()
    version = Run.objects.get(pk=run.pk).release.block_versions.get()
    assert version.block_id is None and version.content["content"] == "Write calmly about {{ topic }}."


@pytest.mark.django_db(transaction=True)
async def test_a_run_by_label_runs_the_labelled_release_while_the_live_tree_is_edited(fake_llm):
    @sync_to_async
    def prepare() -> Run:
        workflow, tone = versioned_tree(make_endpoint(fake_llm.base_url))
        release, _ = release_cut(workflow=workflow, message="tested")
        label_set(workflow=workflow, name="production", release=release)
        block_update(block=tone, data={"content": "Shout about {{ topic }} and {{ mood }}."})
        workflow_update(workflow=workflow, data={"inputs": [{"name": "topic"}, {"name": "mood"}]})
        return run_start(workflow=workflow, inputs={"topic": "tides"}, user=None, label="production")

    run = await prepare()
    assert await execute_run(run.pk) == "succeeded"
    response = await Response.objects.aget(run_id=run.pk)
    assert response.messages == [{"role": "user", "content": "Write calmly about tides."}]
    run = await Run.objects.select_related("release").aget(pk=run.pk)
    assert run.label == "production" and run.release.message == "tested"


def test_a_caller_allowed_only_to_create_cannot_move_and_the_reverse(tree):
    from django.core.exceptions import PermissionDenied
    workflow, _ = tree
    release, _ = release_cut(workflow=workflow)
    with pytest.raises(PermissionDenied, match="add_label"):
        label_set(workflow=workflow, name="production", release=release, may_create=False)
    label_set(workflow=workflow, name="production", release=release, may_move=False)
    with pytest.raises(PermissionDenied, match="change_label"):
        label_set(workflow=workflow, name="production", release=release, may_move=False)
    assert LabelMove.objects.count() == 1
