"""/api/datasets/: datasets, versions, rows (read, add, change, delete) and permissions."""
from __future__ import annotations

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from datasets.models import Dataset
from tests.datasets.conftest import make_dataset, stored, upload

pytestmark = pytest.mark.django_db




def test_create_list_rename_delete(api: APIClient) -> None:
    created = api.post("/api/datasets/", {"name": "qa", "description": "questions"}, format="json")
    assert created.status_code == 201, created.data
    assert (created.data["latest_version"], created.data["row_count"]) == (None, None)
    url = f"/api/datasets/{created.data['id']}/"
    assert api.post("/api/datasets/", {"name": "qa"}, format="json").data == {
        "name": ["dataset with this name already exists."]}
    assert api.post("/api/datasets/", {"name": "x", "colour": 1}, format="json").data == {"colour": ["Unknown field."]}
    assert api.patch(url, {"name": "qa2"}, format="json").data["name"] == "qa2"
    assert [item["name"] for item in api.get("/api/datasets/").data["results"]] == ["qa2"]
    assert api.delete(url).status_code == 204 and not Dataset.objects.exists()


def test_rows_added_changed_and_deleted_make_versions_with_stable_row_ids(api: APIClient) -> None:
    dataset = make_dataset()
    base = f"/api/datasets/{dataset.pk}"
    added = api.post(f"{base}/rows/", [{"inputs": {"q": "a"}, "expected": "A"}, {"inputs": {"q": "b"}}], format="json")
    assert (added.status_code, added.data["number"], added.data["row_count"]) == (201, 1, 2), added.data
    rows = api.get(f"{base}/rows/").data["results"]
    first, second = rows[0]["row"], rows[1]["row"]
    assert [(row["position"], row["inputs"], row["expected"]) for row in rows] == [(0, {"q": "a"}, "A"), (1, {"q": "b"}, None)]
    changed = api.post(f"{base}/rows/change/", {"change": {str(second): {"expected": "B"}}, "delete": [first],
                                                "add": [{"inputs": {"q": "c"}, "metadata": {"k": 1}}],
                                                "message": "fix b"}, format="json")
    assert (changed.status_code, changed.data["number"], changed.data["message"]) == (201, 2, "fix b"), changed.data
    rows = api.get(f"{base}/rows/?version=2").data["results"]
    assert (rows[0]["row"], rows[0]["expected"]) == (second, "B")
    assert rows[1]["metadata"] == {"k": 1} and rows[1]["row"] not in (first, second)
    assert [row["row"] for row in api.get(f"{base}/rows/?version=1").data["results"]] == [first, second]
    versions = api.get(f"{base}/versions/").data["results"]
    assert [version["number"] for version in versions] == [2, 1]
    assert api.get(f"{base}/versions/1/").data["row_count"] == 2
    assert api.get(f"{base}/versions/9/").status_code == 404
    assert api.get(f"{base}/rows/?version=x").data == {"version": ["“x” is not a version number."]}


def test_one_case_alone_is_a_row_added(api: APIClient) -> None:
    dataset = make_dataset()
    response = api.post(f"/api/datasets/{dataset.pk}/rows/", {"inputs": {"q": "a"}, "expected": {"n": 1}}, format="json")
    assert (response.status_code, response.data["row_count"]) == (201, 1), response.data
    assert api.get(f"/api/datasets/{dataset.pk}/rows/").data["results"][0]["expected"] == {"n": 1}


def test_bad_rows_are_400s_naming_the_row_and_field(api: APIClient) -> None:
    dataset = make_dataset()
    base = f"/api/datasets/{dataset.pk}"
    response = api.post(f"{base}/rows/", [{"inputs": {"q": "a"}}, {"inputs": "text"}], format="json")
    assert (response.status_code, response.data) == (400, {"add": ["add[1].inputs: a JSON object with at least one input."]})
    assert api.post(f"{base}/rows/", 5, format="json").status_code == 400
    response = api.post(f"{base}/rows/change/", {"change": {"abc": {}}}, format="json")
    assert (response.status_code, response.data) == (400, {"change": ["“abc” is not a row id."]})
    response = api.post(f"{base}/rows/change/", {"delete": [5]}, format="json")
    assert (response.status_code, response.data) == (400, {"delete": ["row 5 is not in the latest version."]})
    assert stored() == (0, 0, 0)


def test_every_route_needs_its_permission(api_with_perms: Callable[..., APIClient]) -> None:
    dataset = make_dataset()
    base = f"/api/datasets/{dataset.pk}"
    nobody = api_with_perms()
    for url in ("/api/datasets/", f"{base}/", f"{base}/versions/", f"{base}/rows/"):
        assert nobody.get(url).status_code == 403, url
    assert APIClient().get("/api/datasets/").status_code in (401, 403)
    reader = api_with_perms("datasets.view_dataset")
    assert reader.get(f"{base}/rows/").status_code == 200
    assert reader.post(f"{base}/rows/", [{"inputs": {"q": "a"}}], format="json").status_code == 403
    assert reader.post(f"{base}/rows/change/", {"delete": [1]}, format="json").status_code == 403
    assert upload(reader, dataset, b"q\n1\n").status_code == 403
    assert reader.post("/api/datasets/", {"name": "x"}, format="json").status_code == 403
    assert stored() == (0, 0, 0)
    editor = api_with_perms("datasets.view_dataset", "datasets.change_dataset")
    assert upload(editor, dataset, b"q\n1\n").status_code == 201
    assert editor.post(f"{base}/rows/", [{"inputs": {"q": "a"}}], format="json").status_code == 201


def test_the_schema_describes_the_routes(api: APIClient) -> None:
    schema = api.get("/api/schema/?format=json").json()
    for path in ("/api/datasets/", "/api/datasets/{id}/rows/", "/api/datasets/{id}/rows/change/",
                 "/api/datasets/{id}/import/", "/api/datasets/{id}/versions/", "/api/datasets/{id}/versions/{number}/"):
        assert path in schema["paths"], path
