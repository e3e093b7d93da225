"""The Releases page (releases with their impact, labels, the label log), the release diff, the run
page's release and versions, "what changed since this run", and the admin of releases and labels."""
from __future__ import annotations

import re

import pytest
from django.test import Client

from blocks.services import block_update
from releases.models import Label, LabelMove, Release
from releases.services import label_set, release_cut
from runs.models import Response, Run, RunStatus
from runs.services import run_start
from tests.factories import make_endpoint
from tests.releases.test_services import versioned_tree
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

VIEW = ("workflows.view_workflow", "releases.view_release")


def finish(run: Run, status: str, latency_ms: int = 100, tokens: int = 10) -> None:
    """Test data: a run as the engine leaves it once it has finished, with the response of its step."""
    Run.objects.filter(pk=run.pk).update(status=status, latency_ms=latency_ms, prompt_tokens=tokens,
                                         completion_tokens=tokens, next_step=1)
    Response.objects.create(run=run, index=0, output_key="text", payload_name="story-writer", endpoint_name="fake",
                            model="gpt-4o-mini", output="an answer", prompt_tokens=tokens, completion_tokens=tokens,
                            latency_ms=latency_ms, status=status)


@pytest.fixture
def tree(user) -> dict:  # type: ignore[no-untyped-def]
    """r1 (3 of 3 runs succeeded) and r2 after a block edit (1 of 2 failed); production on r1."""
    workflow, tone = versioned_tree(make_endpoint())
    old = [run_start(workflow=workflow, inputs={"topic": t}, user=user) for t in ("tides", "moons", "owls")]
    for run in old:
        finish(run, RunStatus.SUCCEEDED, latency_ms=200)
    block_update(block=tone, data={"content": "Write briskly about {{ topic }}."}, message="brisker")
    new = [run_start(workflow=workflow, inputs={"topic": t}, user=user) for t in ("tides", "moons")]
    finish(new[0], RunStatus.SUCCEEDED, latency_ms=900)
    finish(new[1], RunStatus.FAILED, latency_ms=0)
    r1, r2 = Release.objects.get(number=1), Release.objects.get(number=2)
    label_set(workflow=workflow, name="production", release=r1, user=user, reason="launch")
    return {"workflow": workflow, "tone": tone, "r1": r1, "r2": r2, "old": old, "new": new}


def page(client: Client, workflow: Workflow, query: str = "") -> str:
    response = client.get(f"/workflows/{workflow.pk}/releases/{query}")
    assert response.status_code == 200
    return response.content.decode()


def row(html: str, number: int) -> str:
    return re.search(rf'<tr id="release-{number}".*?</tr>', html, re.S).group(0)


# --- the Releases page ---------------------------------------------------------------------------

def test_releases_are_listed_newest_first_with_labels_and_how_their_runs_did(user_client, tree):
    html = page(user_client, tree["workflow"])
    assert re.findall(r'<tr id="release-(\d+)"', html) == ["2", "1"]
    r1, r2 = row(html, 1), row(html, 2)
    assert 'data-label="production"' in r1 and 'data-label="production"' not in r2
    # r2 fails more than r1: its success rate is marked worse before anyone reads a line.
    assert re.search(r'data-field="success"[^>]*data-trend="worse"[^>]*>.*?50 %', r2, re.S)
    assert re.search(r'data-field="success"[^>]*data-trend=""[^>]*>\s*100 %', r1)
    assert f'href="/runs/?release={tree["r2"].pk}">2</a>' in r2 and f'href="/runs/?release={tree["r1"].pk}">3</a>' in r1
    assert "200 ms" in r1 and "900 ms" in r2  # the median latency of the succeeded runs
    assert f'href="/workflows/{tree["workflow"].pk}/releases/2/diff/"' in r2 and "Diff r1" in r2
    assert "tree-diff" not in html


def test_the_runs_link_lists_only_the_runs_of_that_release(user_client, tree):
    html = user_client.get(f"/runs/?release={tree['r2'].pk}").content.decode()
    shown = {int(pk) for pk in re.findall(r'data-run-id="(\d+)"', html)}
    assert shown == {run.pk for run in tree["new"]}
    assert "release r2 of story" in html
    unfiltered = user_client.get("/runs/").content.decode()
    assert len(set(re.findall(r'data-run-id="(\d+)"', unfiltered))) == 5


def test_the_page_needs_login_and_the_view_permissions(client, tree, client_with_perms):
    url = f"/workflows/{tree['workflow'].pk}/releases/"
    assert client.get(url).status_code == 302  # to the log-in page
    assert client_with_perms().get(url).status_code == 403
    assert client_with_perms("workflows.view_workflow").get(url).status_code == 403
    viewer = page(client_with_perms(*VIEW), tree["workflow"])
    # Seeing releases shows no forms, labels or label log without their own permissions.
    assert 'id="cut-form"' not in viewer and 'id="labels"' not in viewer and 'id="label-history"' not in viewer
    assert client_with_perms(*VIEW).get(f"/workflows/{2**40}/releases/").status_code == 404


def test_the_builder_and_its_history_link_to_the_releases(user_client, tree, client_with_perms):
    url = f'href="/workflows/{tree["workflow"].pk}/releases/"'
    assert url in user_client.get(f"/workflows/{tree['workflow'].pk}/").content.decode()
    assert url in user_client.get(f"/workflows/{tree['workflow'].pk}/history/").content.decode()
    assert url not in user_client.get(f"/blocks/{tree['tone'].pk}/history/").content.decode()
    no_release_perm = client_with_perms("workflows.view_workflow")
    assert url not in no_release_perm.get(f"/workflows/{tree['workflow'].pk}/").content.decode()


def test_cutting_a_release_by_hand(user_client, user, tree):
    workflow = tree["workflow"]
    response = user_client.post(f"/workflows/{workflow.pk}/releases/cut/", {"cut-message": "  same tree  "})
    # The tree has not changed since r2: no new release, and the message says so.
    assert response.status_code == 302 and response["Location"].endswith("#release-2")
    assert Release.objects.count() == 2
    assert "release r2 already" in user_client.get(response["Location"]).content.decode()
    block_update(block=tree["tone"], data={"content": "Write gently about {{ topic }}."})
    response = user_client.post(f"/workflows/{workflow.pk}/releases/cut/", {"cut-message": "gentler"})
    assert response["Location"].endswith("#release-3")
    r3 = Release.objects.get(number=3)
    assert (r3.message, r3.cut_by_hand, r3.created_by) == ("gentler", True, user)
    assert "Cut release r3." in user_client.get(response["Location"]).content.decode()


def test_cutting_needs_the_add_release_permission(tree, client_with_perms):
    workflow = tree["workflow"]
    block_update(block=tree["tone"], data={"content": "Write gently about {{ topic }}."})
    viewer = client_with_perms(*VIEW)
    assert viewer.post(f"/workflows/{workflow.pk}/releases/cut/", {"cut-message": "x"}).status_code == 403
    assert Release.objects.count() == 2
    cutter = client_with_perms(*VIEW, "releases.add_release")
    assert cutter.get(f"/workflows/{workflow.pk}/releases/cut/").status_code == 405
    assert 'id="cut-form"' in page(cutter, workflow)
    assert cutter.post(f"/workflows/{workflow.pk}/releases/cut/", {"cut-message": "x"}).status_code == 302
    assert Release.objects.count() == 3


def test_a_too_long_message_is_refused_on_its_field_and_kept(user_client, tree):
    message = "m" * 501
    response = user_client.post(f"/workflows/{tree['workflow'].pk}/releases/cut/", {"cut-message": message})
    html = response.content.decode()
    assert response.status_code == 400
    assert re.search(r'id="id_cut-message_errors"><li>Ensure this value has at most 500', html)
    assert f'value="{message}"' in html


# --- labels ------------------------------------------------------------------------------------

def test_creating_a_label_logs_it(user_client, user, tree):
    workflow = tree["workflow"]
    response = user_client.post(f"/workflows/{workflow.pk}/labels/",
                                {"new-name": "staging", "new-release": tree["r2"].pk, "new-reason": "try the brisk tone"})
    assert response.status_code == 302 and response["Location"].endswith("#labels")
    label = Label.objects.get(workflow=workflow, name="staging")
    assert label.release == tree["r2"]
    move = LabelMove.objects.get(label="staging")
    assert (move.from_release, move.to_release, move.reason, move.moved_by) == (None, tree["r2"], "try the brisk tone", user)
    html = user_client.get(response["Location"]).content.decode()
    assert 'id="label-staging"' in html and "created at r2" in html


@pytest.mark.parametrize(("name", "problem"), [
    ("prod env", "is not a label name"),
    ("p" * 200, "at most 50 characters; this one has 200"),
])
def test_a_bad_label_name_is_refused_on_its_field_and_nothing_typed_is_lost(user_client, tree, name, problem):
    workflow = tree["workflow"]
    response = user_client.post(f"/workflows/{workflow.pk}/labels/",
                                {"new-name": name, "new-release": tree["r2"].pk, "new-reason": "my careful reason"})
    html = response.content.decode()
    assert response.status_code == 400
    errors = re.search(r'id="id_new-name_errors">(.*?)</ul>', html, re.S).group(1)
    assert problem in errors
    assert f'value="{name}"' in html and 'value="my careful reason"' in html
    assert re.search(rf'<option value="{tree["r2"].pk}" selected>r2', html)
    assert Label.objects.count() == 1 and LabelMove.objects.count() == 1


def test_creating_a_label_that_exists_is_refused_rather_than_moving_it(user_client, tree):
    response = user_client.post(f"/workflows/{tree['workflow'].pk}/labels/",
                                {"new-name": "production", "new-release": tree["r2"].pk})
    assert response.status_code == 400
    assert "has a label “production” already" in response.content.decode()
    assert Label.objects.get(name="production").release == tree["r1"]


def test_a_release_of_another_workflow_is_not_a_choice(user_client, tree):
    other, _ = versioned_tree(make_endpoint(name="other"), name="other")
    foreign, _ = release_cut(workflow=other)
    response = user_client.post(f"/workflows/{tree['workflow'].pk}/labels/production/move/",
                                {"move-production-release": foreign.pk})
    assert response.status_code == 400
    assert re.search(r'id="id_move-production-release_errors"><li>Select a valid choice', response.content.decode())
    assert Label.objects.get(name="production").release == tree["r1"]


def test_moving_a_label_with_a_reason_shows_in_the_history(user_client, user, tree):
    workflow = tree["workflow"]
    response = user_client.post(f"/workflows/{workflow.pk}/labels/production/move/",
                                {"move-production-release": tree["r2"].pk, "move-production-reason": "brisk wins"})
    assert response.status_code == 302
    assert Label.objects.get(name="production").release == tree["r2"]
    html = user_client.get(response["Location"]).content.decode()
    assert "Moved label “production” from r1 to r2." in html
    latest = re.search(r'<tr data-label="production" data-action="moved">(.*?)</tr>', html, re.S).group(1)
    assert "r1 → r2" in latest and "brisk wins" in latest and user.username in latest


def test_roll_back_moves_the_label_to_where_it_was_with_the_reason(user_client, tree):
    workflow = tree["workflow"]
    html = page(user_client, workflow)
    assert "Roll back to r" not in html  # created at r1 and never moved: nowhere to go back to
    refused = user_client.post(f"/workflows/{workflow.pk}/labels/production/rollback/", {})
    assert refused.status_code == 400 and "nothing to roll back to" in refused.content.decode()
    label_set(workflow=workflow, name="production", release=tree["r2"], reason="ship brisk")
    assert "Roll back to r1" in page(user_client, workflow)
    response = user_client.post(f"/workflows/{workflow.pk}/labels/production/rollback/",
                                {"rollback-production-reason": "r2 fails half its runs"})
    assert response.status_code == 302
    assert Label.objects.get(name="production").release == tree["r1"]
    assert LabelMove.objects.first().reason == "Roll back to r1: r2 fails half its runs"
    assert "Rolled label “production” back from r2 to r1." in user_client.get(response["Location"]).content.decode()


def test_deleting_a_label_is_logged(user_client, tree):
    workflow = tree["workflow"]
    response = user_client.post(f"/workflows/{workflow.pk}/labels/production/delete/",
                                {"delete-production-reason": "retired"})
    assert response.status_code == 302 and not Label.objects.exists()
    assert (LabelMove.objects.first().action, LabelMove.objects.first().reason) == ("deleted", "retired")
    html = user_client.get(response["Location"]).content.decode()
    assert "deleted (was r1)" in html and 'id="no-labels"' in html
    assert user_client.post(f"/workflows/{workflow.pk}/labels/production/delete/").status_code == 404


def test_each_label_change_needs_its_own_permission(tree, client_with_perms):
    workflow = tree["workflow"]
    base = (*VIEW, "releases.view_label")
    viewer = client_with_perms(*base)
    html = page(viewer, workflow)
    assert 'id="label-production"' in html and "label-move" not in html and "label-create" not in html
    assert viewer.post(f"/workflows/{workflow.pk}/labels/", {"new-name": "x", "new-release": tree["r2"].pk}).status_code == 403
    assert viewer.post(f"/workflows/{workflow.pk}/labels/production/move/",
                       {"move-production-release": tree["r2"].pk}).status_code == 403
    assert viewer.post(f"/workflows/{workflow.pk}/labels/production/rollback/").status_code == 403
    assert viewer.post(f"/workflows/{workflow.pk}/labels/production/delete/").status_code == 403
    assert LabelMove.objects.count() == 1 and Label.objects.get().release == tree["r1"]
    mover = client_with_perms(*base, "releases.change_label")
    assert mover.post(f"/workflows/{workflow.pk}/labels/production/move/",
                      {"move-production-release": tree["r2"].pk}).status_code == 302
    assert mover.post(f"/workflows/{workflow.pk}/labels/production/delete/").status_code == 403
    assert client_with_perms(*base, "releases.delete_label").post(
        f"/workflows/{workflow.pk}/labels/production/delete/").status_code == 302
    assert client_with_perms(*base, "releases.add_label").post(
        f"/workflows/{workflow.pk}/labels/", {"new-name": "x", "new-release": tree["r2"].pk}).status_code == 302
    assert sorted(LabelMove.objects.values_list("label", flat=True)) == ["production", "production", "production", "x"]


def test_the_label_history_is_filterable_by_label(user_client, tree):
    workflow = tree["workflow"]
    label_set(workflow=workflow, name="staging", release=tree["r2"], reason="try it")
    label_set(workflow=workflow, name="production", release=tree["r2"], reason="ship it")
    every = page(user_client, workflow)
    assert re.findall(r'<tr data-label="([^"]+)" data-action', every) == ["production", "staging", "production"]
    staging = page(user_client, workflow, "?label=staging")
    assert re.findall(r'<tr data-label="([^"]+)" data-action', staging) == ["staging"]
    assert '<option value="staging" selected>' in staging
    assert 'id="no-label-history"' in page(user_client, workflow, "?label=nope")


def test_the_label_log_needs_its_view_permission(tree, client_with_perms):
    html = page(client_with_perms(*VIEW, "releases.view_label", "releases.view_labelmove"), tree["workflow"])
    assert 'id="label-history-table"' in html and "launch" in html


# --- the release diff ----------------------------------------------------------------------------

def test_the_diff_against_the_previous_release_shows_the_changed_block_word_by_word(user_client, tree):
    response = user_client.get(f"/workflows/{tree['workflow'].pk}/releases/2/diff/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "r1 → r2" in html
    step = re.search(r'<li class="card tree-step" data-step="text" data-status="changed">.*?</li>', html, re.S).group(0)
    assert "<del>calmly</del>" in step and "<ins>briskly</ins>" in step
    assert '<option value="1" selected>r1' in html


def test_the_diff_against_the_current_tree_lists_added_steps_and_changed_settings(user_client, user, tree):
    from payloads.services import payload_create, payload_update
    from workflows.services import workflow_update

    workflow = tree["workflow"]
    payload = workflow.steps.get().payload
    payload_update(payload=payload, data={"temperature": 0.9}, user=user)
    extra = payload_create(name="critic", endpoint=payload.endpoint, blocks=[{"block": tree["tone"], "role": "user"}])
    workflow_update(workflow=workflow, data={}, steps=[{"payload": payload, "output_key": "text"},
                                                       {"payload": extra, "output_key": "review"}])
    html = user_client.get(f"/workflows/{workflow.pk}/releases/2/diff/?against=current").content.decode()
    assert "r2 → the current tree" in html
    assert 'data-step="review" data-status="added"' in html
    settings = re.search(r'data-step="text" data-status="changed">.*?</li>', html, re.S).group(0)
    assert re.search(r'<tr data-field="params" data-changed="true">', settings) and "0.9" in settings


def test_a_diff_of_the_same_tree_says_nothing_changed(user_client, tree):
    html = user_client.get(f"/workflows/{tree['workflow'].pk}/releases/2/diff/?against=current").content.decode()
    assert 'id="diff-summary" data-changed="false"' in html


def test_the_first_release_is_shown_against_nothing(user_client, tree):
    html = user_client.get(f"/workflows/{tree['workflow'].pk}/releases/1/diff/").content.decode()
    assert "Nothing (the first release) → r1" in html and 'data-status="added"' in html
    assert '<option value="" selected disabled>nothing (r1 is the first)</option>' in html


def test_a_bad_or_unknown_release_to_compare_with_is_refused(user_client, tree, client_with_perms):
    base = f"/workflows/{tree['workflow'].pk}/releases"
    bad = user_client.get(f"{base}/2/diff/?against=yesterday")
    assert bad.status_code == 400 and "“yesterday” is neither “current” nor a release number" in bad.content.decode()
    unknown = user_client.get(f"{base}/2/diff/?against=9")
    assert unknown.status_code == 404 and "has no release r9" in unknown.content.decode()
    assert user_client.get(f"{base}/9/diff/").status_code == 404
    assert client_with_perms("workflows.view_workflow").get(f"{base}/2/diff/").status_code == 403


def flow_releases(user) -> tuple[Workflow, Release, Release]:  # type: ignore[no-untyped-def]
    """r1 a plain one-step chain; r2 the same payload and texts with only control flow changed."""
    from workflows.services import workflow_update

    workflow, _ = versioned_tree(make_endpoint())
    r1, _ = release_cut(workflow=workflow, user=user)
    payload = workflow.steps.get().payload
    workflow_update(workflow=workflow, data={"max_parallel": 2},
                    steps=[{"payload": payload, "output_key": "text", "when": 'topic != "none"', "for_each": "topic",
                            "item_as": "subject", "on_error": "skip"}])
    r2, _ = release_cut(workflow=workflow, user=user)
    return workflow, r1, r2


def test_the_diff_shows_control_flow_changes_in_the_builders_words(client_with_perms, user):
    workflow, _, r2 = flow_releases(user)
    response = client_with_perms(*VIEW).get(f"/workflows/{workflow.pk}/releases/{r2.number}/diff/")
    html = response.content.decode()
    assert response.status_code == 200 and 'id="diff-summary" data-changed="true"' in html
    step = re.search(r'<li class="card tree-step" data-step="text" data-status="changed">.*?</li>', html, re.S).group(0)
    flow = re.search(r'<table class="table history-fields" data-table="flow">.*?</table>', step, re.S).group(0)
    rows = dict(re.findall(r'<tr data-field="(\w+)" data-changed="true"><th scope="row">(.*?)</th>', flow))
    assert rows == {"when": "When", "for_each": "For each item of", "item_as": "as", "on_error": "If an item fails"}
    assert re.search(r'data-field="when".*?<td class="muted">always runs</td><td class="mono">topic != &quot;none&quot;</td>',
                     flow)
    assert re.search(r'data-field="for_each".*?<td class="muted">one call</td><td class="mono">topic</td>', flow)
    assert re.search(r'data-field="on_error".*?<td class="muted">fail: fail the run, naming the item</td>'
                     r'<td>skip: record the item failed and go on without it</td>', flow)
    assert 'data-table="fields"' not in step and "<del>" not in step  # only the flow differs
    workflow_setting = re.search(r'<table class="table history-fields" id="diff-max-parallel">.*?</table>', html, re.S)
    assert "Steps at once" in html and re.findall(r'<td class="mono">(\d+)</td>', workflow_setting.group(0)) == ["4", "2"]


def test_two_releases_with_the_same_flow_show_no_flow_change(client_with_perms, user):
    workflow, _, r2 = flow_releases(user)
    html = client_with_perms(*VIEW).get(
        f"/workflows/{workflow.pk}/releases/{r2.number}/diff/?against=current").content.decode()
    assert 'id="diff-summary" data-changed="false"' in html
    assert 'data-table="flow"' not in html and 'id="diff-max-parallel"' not in html
    assert 'data-step="text" data-status="same"' in html


def test_the_diff_labels_the_flow_fields_as_the_builder_does(user_client, user):
    from releases.selectors import FLOW_LABELS

    workflow, _, _ = flow_releases(user)
    builder = user_client.get(f"/workflows/{workflow.pk}/").content.decode()
    labels = set(re.findall(r'<label for="step-[\w-]+">(.*?)</label>', builder)) | set(
        re.findall(r'<label for="id_max_parallel">(.*?)</label>', builder))
    assert set(FLOW_LABELS.values()) | {"Steps at once"} <= labels


def test_a_release_from_before_steps_at_once_counts_as_the_default(user):
    """Snapshots cut before the setting existed have no max_parallel: the engine ran them at 4."""
    from releases.selectors import tree_diff

    _, r1, _ = flow_releases(user)
    older = {key: value for key, value in r1.snapshot.items() if key != "max_parallel"}
    assert tree_diff(older, r1.snapshot).changed is False
    assert tree_diff({"inputs": [], "steps": []}, r1.snapshot).max_parallel == (None, 4)


def test_the_diff_api_names_the_flow_changes_with_their_stored_values(api, user):
    _, _, r2 = flow_releases(user)
    diff = api.get(f"/api/releases/{r2.pk}/diff/").json()
    assert diff["max_parallel"] == {"old": 4, "new": 2, "changed": True}
    flow = {change["name"]: (change["old"], change["new"]) for change in diff["steps"][0]["flow"]}
    assert flow == {"when": ("", 'topic != "none"'), "for_each": ("", "topic"), "item_as": ("item", "subject"),
                    "on_error": ("fail", "skip")}


# --- the run page and "what changed since this run" ---------------------------------------------

def test_the_run_page_names_its_release_and_label_and_links_the_versions_it_used(user_client, tree):
    label_set(workflow=tree["workflow"], name="production", release=tree["r2"])
    run = run_start(workflow=tree["workflow"], inputs={"topic": "eels"}, user=None, label="production")
    finish(run, RunStatus.SUCCEEDED)
    html = user_client.get(f"/runs/{run.pk}/").content.decode()
    release = re.search(r'<dd id="run-release">(.*?)</dd>', html, re.S).group(1)
    assert f'href="/workflows/{tree["workflow"].pk}/releases/#release-2">r2</a>' in release
    assert 'data-label="production"' in release and f'href="/runs/{run.pk}/changes/"' in release
    payload = tree["workflow"].steps.get().payload
    step = re.search(r'<li class="step" data-index="0".*?</li>', html, re.S).group(0)
    versions = re.search(r'data-field="versions" data-index="0">(.*?)</p>', step, re.S).group(1)
    assert f'href="/payloads/{payload.pk}/history/?v=1"' in versions
    assert f'href="/blocks/{tree["tone"].pk}/history/?v=2" data-kind="block">story-tone v2</a>' in versions


def test_the_version_links_follow_the_permissions(tree, client_with_perms):
    run = tree["old"][0]
    viewer = client_with_perms("runs.view_run").get(f"/runs/{run.pk}/").content.decode()
    assert "/history/?v=" not in viewer and "story-tone v1" in viewer and 'id="run-changes"' not in viewer
    assert 'href="/workflows/' not in re.search(r'<dd id="run-release">(.*?)</dd>', viewer, re.S).group(1)
    blocks_only = client_with_perms("runs.view_run", "blocks.view_block").get(f"/runs/{run.pk}/")
    html = blocks_only.content.decode()
    payload = tree["workflow"].steps.get().payload
    assert f'href="/blocks/{tree["tone"].pk}/history/?v=1"' in html and f"/payloads/{payload.pk}/history/" not in html


def test_what_changed_since_a_run_against_the_current_tree_and_another_run(user_client, tree):
    old_run, new_run = tree["old"][0], tree["new"][0]
    current = user_client.get(f"/runs/{old_run.pk}/changes/").content.decode()
    assert f"Run #{old_run.pk} (r1) → the current tree" in current
    assert "<del>calmly</del>" in current and "<ins>briskly</ins>" in current
    other = user_client.get(f"/runs/{old_run.pk}/changes/?against={new_run.pk}").content.decode()
    assert f"Run #{old_run.pk} (r1) → run #{new_run.pk} (r2)" in other and "<ins>briskly</ins>" in other
    same = user_client.get(f"/runs/{new_run.pk}/changes/?against=current").content.decode()
    assert 'data-changed="false"' in same


def test_what_changed_refuses_bad_input_and_needs_the_permissions(user_client, tree, client_with_perms):
    run = tree["old"][0]
    bad = user_client.get(f"/runs/{run.pk}/changes/?against=last-week")
    assert bad.status_code == 400 and "neither “current” nor a run id" in bad.content.decode()
    assert 'value="last-week"' in bad.content.decode()
    assert user_client.get(f"/runs/{run.pk}/changes/?against=999999").status_code == 404
    assert user_client.get(f"/runs/{2**40}/changes/").status_code == 404
    assert client_with_perms("runs.view_run").get(f"/runs/{run.pk}/changes/").status_code == 403
    assert client_with_perms("runs.view_run", "releases.view_release").get(
        f"/runs/{run.pk}/changes/").status_code == 200


def test_a_run_whose_workflow_was_deleted_compares_only_with_another_run(user_client, tree):
    old_run, new_run = tree["old"][0], tree["new"][0]
    Run.objects.filter(pk=old_run.pk).update(workflow=None)  # as after the workflow's deletion
    refused = user_client.get(f"/runs/{old_run.pk}/changes/")
    assert refused.status_code == 400 and "was deleted: compare with another run" in refused.content.decode()
    other = user_client.get(f"/runs/{old_run.pk}/changes/?against={new_run.pk}")
    assert other.status_code == 200 and "<ins>briskly</ins>" in other.content.decode()


# --- the admin -----------------------------------------------------------------------------------

def test_releases_and_label_moves_are_read_only_in_the_admin(user_client, tree):
    changelist = user_client.get("/admin/releases/release/").content.decode()
    assert tree["r1"].content_hash[:12] in changelist and tree["r2"].content_hash[:12] in changelist
    assert user_client.get(f"/admin/releases/release/?workflow__id__exact={tree['workflow'].pk}").status_code == 200
    assert user_client.get("/admin/releases/release/add/").status_code == 403
    change = user_client.get(f"/admin/releases/release/{tree['r1'].pk}/change/").content.decode()
    assert 'name="message"' not in change and "_save" not in change
    assert user_client.post(f"/admin/releases/release/{tree['r1'].pk}/delete/", {"post": "yes"}).status_code == 403
    assert user_client.get("/admin/releases/labelmove/").status_code == 200
    assert user_client.get("/admin/releases/labelmove/add/").status_code == 403
    assert Release.objects.count() == 2


def test_a_label_changed_in_the_admin_is_logged_like_any_move(user_client, user, tree):
    label = Label.objects.get()
    response = user_client.post(f"/admin/releases/label/{label.pk}/change/",
                                {"release": tree["r2"].pk, "reason": "from the admin"})
    assert response.status_code == 302
    move = LabelMove.objects.first()
    assert (move.from_release, move.to_release, move.reason, move.moved_by) == (tree["r1"], tree["r2"], "from the admin", user)
    response = user_client.post("/admin/releases/label/add/", {"workflow": tree["workflow"].pk, "name": "bad name",
                                                               "release": tree["r2"].pk})
    assert response.status_code == 200 and "is not a label name" in response.content.decode()
    response = user_client.post(f"/admin/releases/label/{label.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not Label.objects.exists()
    assert LabelMove.objects.first().action == "deleted"
