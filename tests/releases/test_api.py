"""The releases and labels API, runs by label, the release of each run, run filters, and the diff routes."""
import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from blocks.services import block_update
from llm import client as llm_client
from llm.models import Endpoint
from releases.models import Label, LabelMove, Release
from releases.services import label_set, release_cut
from runs.engine import execute_run
from runs.models import Run
from runs.services import run_start
from tests.factories import make_endpoint
from tests.releases.test_services import versioned_tree

pytestmark = pytest.mark.django_db


def finish(run_id: int) -> str:
    async def run_and_close() -> str:
        try:
            return await execute_run(run_id)
        finally:
            await llm_client.aclose_all()

    return async_to_sync(run_and_close)()


def client_with(django_user_model, *codenames: str) -> APIClient:  # type: ignore[no-untyped-def]
    """An API client of a new user holding only these permissions of the releases app (or app.codename)."""
    person = django_user_model.objects.create_user(f"person{django_user_model.objects.count()}", password="x")
    for name in codenames:
        app_label, codename = name.split(".") if "." in name else ("releases", name)
        person.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    api = APIClient()
    api.force_authenticate(person)
    return api


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


@pytest.fixture
def tree():  # type: ignore[no-untyped-def]
    return versioned_tree(make_endpoint())


@pytest.fixture
def two_releases(tree):  # type: ignore[no-untyped-def]
    """(workflow, tone block, release 1 of "calmly", release 2 of "briskly")."""
    workflow, tone = tree
    first, _ = release_cut(workflow=workflow, message="calm")
    block_update(block=tone, data={"content": "Write briskly about {{ topic }}."}, message="brisker")
    second, _ = release_cut(workflow=workflow, message="brisk")
    return workflow, tone, first, second


# --- releases ---------------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_releases_list_newest_first_with_how_their_runs_did(api, fake_llm):
    workflow, tone = versioned_tree(make_endpoint(fake_llm.base_url))
    url = f"/api/workflows/{workflow.pk}/releases/"
    good = api.post(f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": "tides"}}, format="json").json()
    assert finish(good["id"]) == "succeeded"
    block_update(block=tone, data={"content": "Write briskly about {{ topic }}."})
    fake_llm.control(models=["nothing-here"])  # the model is gone: the next run fails for good
    bad = api.post(f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": "tides"}}, format="json").json()
    assert finish(bad["id"]) == "failed"

    listed = api.get(url).json()
    assert listed["count"] == 2
    newer, older = listed["results"]
    assert (newer["number"], older["number"]) == (2, 1)
    assert older["impact"]["runs"] == 1 and older["impact"]["succeeded"] == 1 and older["impact"]["success_rate"] == 1.0
    assert older["impact"]["tokens"] == Run.objects.get(pk=good["id"]).total_tokens > 0
    assert older["impact"]["median_latency_ms"] == Run.objects.get(pk=good["id"]).latency_ms
    assert newer["impact"] == {"runs": 1, "succeeded": 0, "failed": 1, "success_rate": 0.0, "tokens": 0,
                               "median_latency_ms": None}
    assert newer["cut_by_hand"] is False and newer["workflow_version"] == 1 and len(newer["content_hash"]) == 64
    assert good["release"] == {"id": older["id"], "number": 1} and bad["release"]["number"] == 2


def test_cutting_by_hand_is_201_once_then_200_with_the_same_release(api, tree):
    workflow, tone = tree
    url = f"/api/workflows/{workflow.pk}/releases/"
    created = api.post(url, {"message": "ready for review"}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert (body["number"], body["message"], body["cut_by_hand"], body["author"]) == (1, "ready for review", True, "admin")
    again = api.post(url, {"message": "again"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == body["id"] and again.json()["message"] == "ready for review"
    assert api.post(url, {"message": 5}, format="json").status_code == 400  # not text
    block_update(block=tone, data={"content": "About {{ nothing }}."})  # cannot run: no release
    refused = api.post(url, {}, format="json")
    assert refused.status_code == 400 and "nothing" in str(refused.json()["workflow"])
    assert Release.objects.count() == 1
    assert api.get("/api/workflows/999999/releases/").status_code == 404


def test_release_detail_has_its_tree_step_versions_labels_impact_and_runs(api, two_releases):
    workflow, tone, first, second = two_releases
    label_set(workflow=workflow, name="production", release=first)
    run_start(workflow=workflow, inputs={"topic": "x"}, user=None, label="production")
    detail = api.get(f"/api/releases/{first.pk}/").json()
    assert detail["snapshot"]["steps"][0]["blocks"][0]["content"] == "Write calmly about {{ topic }}."
    assert detail["steps"][0]["blocks"][0]["block_version"] == 1
    assert detail["steps"][0]["blocks"][0]["block_version_id"] == tone.versions.get(number=1).pk
    assert detail["labels"] == ["production"] and detail["impact"]["runs"] == 0  # impact counts finished runs; the queued one is in runs.count
    assert detail["runs"]["count"] == 1 and detail["runs"]["url"].endswith(f"/api/runs/?release={first.pk}")
    assert api.get(f"/api/releases/{second.pk}/").json()["runs"]["count"] == 0
    listed = api.get("/api/releases/", {"workflow": workflow.pk}).json()
    assert [r["number"] for r in listed["results"]] == [2, 1] and "snapshot" not in listed["results"][0]
    assert api.get("/api/releases/999999/").status_code == 404


def test_reading_and_cutting_releases_need_their_permissions(django_user_model, anonymous, two_releases):
    workflow, _, first, _ = two_releases
    url = f"/api/workflows/{workflow.pk}/releases/"
    nobody = client_with(django_user_model)
    for path in (url, "/api/releases/", f"/api/releases/{first.pk}/", f"/api/releases/{first.pk}/diff/"):
        assert nobody.get(path).status_code == 403, path
        assert anonymous.get(path).status_code in (401, 403), path
    reader = client_with(django_user_model, "view_release")
    assert reader.get(url).status_code == 200 and reader.get(f"/api/releases/{first.pk}/").status_code == 200
    assert reader.post(url, {"message": "x"}, format="json").status_code == 403
    assert client_with(django_user_model, "add_release").post(url, {}, format="json").status_code == 200


# --- labels -----------------------------------------------------------------------------------------

def test_create_move_roll_back_and_delete_a_label_with_its_history(api, two_releases):
    workflow, _, first, second = two_releases
    url = f"/api/workflows/{workflow.pk}/labels/production/"
    created = api.put(url, {"release": first.pk, "reason": "launch"}, format="json")
    assert created.status_code == 201 and created.json()["release"] == {"id": first.pk, "number": 1}
    moved = api.put(url, {"release": second.pk, "reason": "brisker is better"}, format="json")
    assert moved.status_code == 200 and moved.json()["release"]["number"] == 2
    rolled_back = api.put(url, {"release": first.pk, "reason": "too brisk"}, format="json")
    assert rolled_back.json()["release"]["number"] == 1 and api.get(url).json()["updated_by"] == "admin"
    api.put(f"/api/workflows/{workflow.pk}/labels/staging/", {"release": second.pk}, format="json")
    assert [(x["name"], x["release"]["number"]) for x in api.get(f"/api/workflows/{workflow.pk}/labels/").json()] == [
        ("production", 1), ("staging", 2)]
    assert api.delete(f"{url}?reason=retired").status_code == 204
    assert api.delete(f"/api/workflows/{workflow.pk}/labels/staging/", {"reason": "from the body"},
                      format="json").status_code == 204
    assert api.get(url).status_code == 404 and api.delete(url).status_code == 404

    history = api.get(f"/api/workflows/{workflow.pk}/label-history/", {"label": "production"}).json()
    assert history["count"] == 4
    assert [(m["action"], (m["from_release"] or {}).get("number"), (m["to_release"] or {}).get("number"), m["reason"])
            for m in history["results"]] == [
        ("deleted", 1, None, "retired"), ("moved", 2, 1, "too brisk"), ("moved", 1, 2, "brisker is better"),
        ("created", None, 1, "launch")]
    assert history["results"][0]["moved_by"] == "admin"
    everything = api.get(f"/api/workflows/{workflow.pk}/label-history/", {"page_size": 2}).json()
    assert everything["count"] == 6 and len(everything["results"]) == 2 and everything["next"]
    assert everything["results"][0]["reason"] == "from the body"


@pytest.mark.parametrize(("name", "body", "field"), [
    ("prod uction", {"release": "FIRST"}, "name"),
    ("x" * 200, {"release": "FIRST"}, "name"),
    ("production", {"release": 999999}, "release"),
    ("production", {"release": "OTHER"}, "release"),
    ("production", {"release": "one"}, "release"),
    ("production", {}, "release"),
    ("production", {"release": "FIRST", "reason": 3}, "reason"),
    ("production", {"release": "FIRST", "colour": "red"}, "colour"),
])
def test_bad_label_requests_are_400_naming_the_field_and_write_nothing(api, two_releases, name, body, field):
    workflow, _, first, _ = two_releases
    other, _ = versioned_tree(Endpoint.objects.get(), name="other")
    foreign, _ = release_cut(workflow=other)
    ids = {"FIRST": first.pk, "OTHER": foreign.pk}
    body = {key: ids.get(value, value) if isinstance(value, str) else value for key, value in body.items()}
    response = api.put(f"/api/workflows/{workflow.pk}/labels/{name}/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert not Label.objects.exists() and not LabelMove.objects.exists()


def test_a_refused_move_leaves_the_label_and_its_log_as_they_were(api, two_releases):
    workflow, _, first, _ = two_releases
    url = f"/api/workflows/{workflow.pk}/labels/production/"
    api.put(url, {"release": first.pk}, format="json")
    other, _ = versioned_tree(Endpoint.objects.get(), name="other")
    foreign, _ = release_cut(workflow=other)
    assert api.put(url, {"release": foreign.pk, "reason": "oops"}, format="json").status_code == 400
    assert Label.objects.get().release_id == first.pk and LabelMove.objects.count() == 1
    assert api.get(f"/api/workflows/{other.pk}/labels/production/").status_code == 404
    assert api.put("/api/workflows/999999/labels/production/", {"release": first.pk}, format="json").status_code == 404


def test_each_label_change_needs_its_own_permission(django_user_model, anonymous, two_releases):
    workflow, _, first, second = two_releases
    url = f"/api/workflows/{workflow.pk}/labels/production/"
    history = f"/api/workflows/{workflow.pk}/label-history/"
    assert anonymous.put(url, {"release": first.pk}, format="json").status_code in (401, 403)
    mover = client_with(django_user_model, "change_label")
    assert mover.put(url, {"release": first.pk}, format="json").status_code == 403  # creating needs add_label
    creator = client_with(django_user_model, "add_label")
    assert creator.put(url, {"release": first.pk}, format="json").status_code == 201
    assert creator.put(url, {"release": second.pk}, format="json").status_code == 403  # moving needs change_label
    assert mover.put(url, {"release": second.pk}, format="json").status_code == 200
    assert creator.delete(url).status_code == 403 and Label.objects.exists()
    for path in (url, f"/api/workflows/{workflow.pk}/labels/", history):
        assert creator.get(path).status_code == 403, path
    assert client_with(django_user_model, "view_label").get(url).status_code == 200
    assert client_with(django_user_model, "view_label").get(history).status_code == 403
    assert client_with(django_user_model, "view_labelmove").get(history).json()["count"] == 2
    assert client_with(django_user_model, "delete_label").delete(url).status_code == 204


# --- runs: by label, their release, filters -------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_a_run_by_label_runs_the_labelled_release_and_names_its_versions(api, fake_llm):
    workflow, tone = versioned_tree(make_endpoint(fake_llm.base_url))
    release, _ = release_cut(workflow=workflow)
    api.put(f"/api/workflows/{workflow.pk}/labels/production/", {"release": release.pk}, format="json")
    block_update(block=tone, data={"content": "Shout about {{ topic }}."})
    started = api.post(f"/api/workflows/{workflow.pk}/runs/", {"label": "production", "inputs": {"topic": "tides"}},
                       format="json")
    assert started.status_code == 201
    body = started.json()
    assert body["label"] == "production" and body["release"] == {"id": release.pk, "number": 1}
    assert finish(body["id"]) == "succeeded"
    detail = api.get(f"/api/runs/{body['id']}/").json()
    assert detail["responses"][0]["messages"] == [{"role": "user", "content": "Write calmly about tides."}]
    step = detail["steps"][0]
    payload = workflow.steps.get().payload
    assert step["payload_version"] == {"id": payload.versions.get(number=1).pk, "number": 1}
    assert step["block_versions"] == [{"block_id": tone.pk, "id": tone.versions.get(number=1).pk, "number": 1}]
    live = api.post(f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": "tides"}}, format="json").json()
    assert live["label"] == "" and live["release"]["number"] == 2
    assert api.get(f"/api/runs/{live['id']}/").json()["steps"][0]["block_versions"][0]["number"] == 2


def test_starting_by_an_unknown_label_is_a_400_naming_it(api, tree):
    workflow, _ = tree
    for label in ("production", "not a label", 7):
        response = api.post(f"/api/workflows/{workflow.pk}/runs/", {"label": label, "inputs": {"topic": "x"}},
                            format="json")
        assert response.status_code == 400 and "label" in response.json(), label
    assert not Run.objects.exists()
    source = run_start(workflow=workflow, inputs={"topic": "x"}, user=None)
    rerun = api.post(f"/api/runs/{source.pk}/rerun/", {"label": "production"}, format="json")
    assert rerun.status_code == 400 and rerun.json() == {"label": ["Unknown field."]}


def test_runs_filter_by_release_label_at_the_time_block_and_payload_version(api, two_releases):
    workflow, tone, first, second = two_releases
    label_set(workflow=workflow, name="production", release=first)
    calm = run_start(workflow=workflow, inputs={"topic": "a"}, user=None)  # the live tree: release 2
    by_label = run_start(workflow=workflow, inputs={"topic": "b"}, user=None, label="production")
    label_set(workflow=workflow, name="production", release=second)
    after_move = run_start(workflow=workflow, inputs={"topic": "c"}, user=None)
    other, _ = versioned_tree(Endpoint.objects.get(), name="other")
    label_set(workflow=other, name="production", release=release_cut(workflow=other)[0])
    elsewhere = run_start(workflow=other, inputs={"topic": "d"}, user=None)

    def ids(path: str, **params: object) -> set[int]:
        response = api.get(path, params)
        assert response.status_code == 200, response.content
        return {r["id"] for r in response.json()["results"]}

    assert ids("/api/runs/", release=first.pk) == {by_label.pk}
    assert ids("/api/runs/", release=second.pk) == {calm.pk, after_move.pk}
    # Labelled at the time: release 1 while it carried the label, then release 2; on every workflow.
    assert ids("/api/runs/", label="production") == {by_label.pk, after_move.pk, elsewhere.pk}
    assert ids("/api/runs/", label="production", workflow=workflow.pk) == {by_label.pk, after_move.pk}
    assert ids(f"/api/workflows/{workflow.pk}/runs/", label="production") == {by_label.pk, after_move.pk}
    assert ids("/api/runs/", label="staging") == set()
    assert ids("/api/runs/", block_version=tone.versions.get(number=1).pk) == {by_label.pk}
    assert ids("/api/runs/", block_version=tone.versions.get(number=2).pk) == {calm.pk, after_move.pk}
    payload = other.steps.get().payload
    assert ids("/api/runs/", payload_version=payload.versions.get().pk) == {elsewhere.pk}
    for bad in ({"release": "x"}, {"block_version": "1.5"}, {"payload_version": 2**64}):
        response = api.get("/api/runs/", bad)
        assert response.status_code == 400 and set(bad) <= set(response.json()), bad
    listed = {r["id"]: r for r in api.get("/api/runs/").json()["results"]}
    assert listed[by_label.pk]["release"] == {"id": first.pk, "number": 1}
    assert listed[by_label.pk]["label"] == "production" and listed[calm.pk]["label"] == ""


def test_the_runs_list_reads_releases_without_a_query_per_run(api, two_releases):
    workflow, tone, _, _ = two_releases

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert api.get("/api/runs/").status_code == 200
        return len(captured)

    run_start(workflow=workflow, inputs={"topic": "a"}, user=None)
    few = queries()
    for n in range(6):
        block_update(block=tone, data={"content": f"Variant {n} about {{{{ topic }}}}."})
        run_start(workflow=workflow, inputs={"topic": "a"}, user=None)
    assert Release.objects.count() == 2 + 6
    assert queries() == few
    assert {r["release"]["number"] for r in api.get("/api/runs/").json()["results"]} == {2, 3, 4, 5, 6, 7, 8}


# --- diffs ------------------------------------------------------------------------------------------

def test_version_diff_of_a_block_against_the_latest_or_any_version(api, tree):
    _, tone = tree
    block_update(block=tone, data={"content": "Write briskly about {{ topic }}."})
    block_update(block=tone, data={"content": "Write briskly about {{ topic }}, today.", "description": "v3"})
    url = f"/api/blocks/{tone.pk}/versions/1/diff/"
    default = api.get(url).json()
    assert (default["old"]["number"], default["new"]["number"]) == (1, 3)
    content = next(t for t in default["texts"] if t["name"] == "content")
    assert content["changed_words"] == 3  # calmly → briskly; "}}." → "}}, today."
    assert [s["text"] for s in content["new"] if s["changed"]] == ["briskly", "}}, today."]
    assert [s["text"] for s in content["old"] if s["changed"]] == ["calmly", "}}."]
    assert next(t for t in default["texts"] if t["name"] == "description")["changed_words"] == 1
    two = api.get(url, {"against": 2}).json()
    assert (two["old"]["number"], two["new"]["number"]) == (1, 2) and two["changed"] == 1
    reversed_ = api.get(f"/api/blocks/{tone.pk}/versions/2/diff/", {"against": 1}).json()
    assert (reversed_["old"]["number"], reversed_["new"]["number"]) == (1, 2)  # the older is on the left
    missing = api.get(url, {"against": 9})
    assert missing.status_code == 404 and "no version 9" in missing.json()["detail"]
    assert api.get(f"/api/blocks/{tone.pk}/versions/9/diff/").status_code == 404
    assert "against" in api.get(url, {"against": "latest"}).json()


def test_version_diff_of_a_workflow_lists_its_steps(api, tree):
    workflow, _ = tree
    from workflows.services import workflow_update
    workflow_update(workflow=workflow, data={"inputs": [{"name": "topic"}, {"name": "mood"}]})
    diff = api.get(f"/api/workflows/{workflow.pk}/versions/1/diff/").json()
    inputs = next(item for item in diff["lists"] if item["name"] == "inputs")
    assert inputs["changed"] and inputs["old"] == ["topic"] and inputs["new"] == ["topic", "mood"]
    assert next(item for item in diff["lists"] if item["name"] == "steps")["changed"] is False
    assert api.get(f"/api/payloads/{workflow.steps.get().payload_id}/versions/1/diff/").json()["changed"] == 0


def test_release_diff_against_the_one_before_or_any_release(api, two_releases):
    _, _, first, second = two_releases
    diff = api.get(f"/api/releases/{second.pk}/diff/").json()
    assert diff["old"] == {"id": first.pk, "number": 1} and diff["new"] == {"id": second.pk, "number": 2}
    assert diff["changed"] and diff["steps"][0]["status"] == "changed"
    text = diff["steps"][0]["blocks"][0]["text"]
    assert [s["text"] for s in text["old"] if s["changed"]] == ["calmly"]
    assert [s["text"] for s in text["new"] if s["changed"]] == ["briskly"]
    assert api.get(f"/api/releases/{first.pk}/diff/", {"against": second.pk}).json()["old"]["id"] == first.pk
    same = api.get(f"/api/releases/{first.pk}/diff/", {"against": first.pk}).json()
    assert same["changed"] is False
    initial = api.get(f"/api/releases/{first.pk}/diff/").json()  # the first release: everything added
    assert initial["old"] is None and initial["steps"][0]["status"] == "added"
    missing = api.get(f"/api/releases/{first.pk}/diff/", {"against": 999999})
    assert missing.status_code == 404 and "999999" in missing.json()["detail"]
    assert "against" in api.get(f"/api/releases/{first.pk}/diff/", {"against": "r2"}).json()


def test_run_changes_against_the_current_tree_or_another_run(api, tree):
    workflow, tone = tree
    before = run_start(workflow=workflow, inputs={"topic": "a"}, user=None)
    url = f"/api/runs/{before.pk}/changes/"
    unchanged = api.get(url).json()
    assert unchanged["changed"] is False and unchanged["against"]["kind"] == "current"
    assert unchanged["against"]["release"]["id"] == before.release_id
    block_update(block=tone, data={"content": "Write briskly about {{ topic }}."})
    current = api.get(url, {"against": "current"}).json()
    assert current["changed"] and current["against"]["release"] is None  # no run or cut of that tree yet
    assert [s["text"] for s in current["steps"][0]["blocks"][0]["text"]["new"] if s["changed"]] == ["briskly"]
    after = run_start(workflow=workflow, inputs={"topic": "a"}, user=None)
    against_run = api.get(url, {"against": after.pk}).json()
    assert against_run["changed"] and against_run["against"] == {
        "kind": "run", "run": after.pk, "release": {"id": after.release_id, "number": 2}}
    assert api.get(url, {"against": 999999}).status_code == 404
    assert "against" in api.get(url, {"against": "yesterday"}).json()
    workflow.delete()
    gone = api.get(url)
    assert gone.status_code == 404 and "deleted" in gone.json()["detail"]


def test_the_browsable_api_shows_the_new_routes(user_client, two_releases):
    workflow, _, first, _ = two_releases
    label_set(workflow=workflow, name="production", release=first)
    for path in (f"/api/workflows/{workflow.pk}/releases/", f"/api/workflows/{workflow.pk}/labels/",
                 f"/api/workflows/{workflow.pk}/labels/production/", f"/api/workflows/{workflow.pk}/label-history/",
                 f"/api/releases/{first.pk}/", f"/api/releases/{first.pk}/diff/"):
        response = user_client.get(path, HTTP_ACCEPT="text/html")
        assert response.status_code == 200 and b"<html" in response.content, path
    assert b"/api/releases/" in user_client.get("/api/", HTTP_ACCEPT="text/html").content
