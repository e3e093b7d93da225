"""The admin: datasets edited through datasets.services, versions and their rows read-only."""
from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from datasets.models import Dataset
from datasets.services import dataset_version_create
from tests.datasets.conftest import make_dataset

pytestmark = pytest.mark.django_db


def test_versions_and_their_first_rows_are_shown_read_only(user_client: Client) -> None:
    dataset = make_dataset()
    version, _ = dataset_version_create(dataset=dataset, cases=iter([{"inputs": {"q": "<b>2+2</b>"}, "expected": "4"}]))
    page = user_client.get(f"/admin/datasets/dataset/{dataset.pk}/change/").content.decode()
    assert "/admin/datasets/datasetversion/" in page
    detail = user_client.get(f"/admin/datasets/datasetversion/{version.pk}/change/")
    assert detail.status_code == 200
    text = detail.content.decode()
    assert "&lt;b&gt;2+2&lt;/b&gt;" in text and "<b>2+2</b>" not in text
    assert user_client.get("/admin/datasets/datasetversion/add/").status_code == 403


def test_adding_a_dataset_records_who_and_a_duplicate_name_is_refused(user_client: Client, user) -> None:  # type: ignore[no-untyped-def]
    response = user_client.post("/admin/datasets/dataset/add/", {
        "name": "qa", "description": "", "versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Dataset.objects.get().created_by == user
    again = user_client.post("/admin/datasets/dataset/add/", {
        "name": "qa", "description": "", "versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0"})
    assert again.status_code == 200 and "already exists" in again.content.decode()


def test_staff_without_the_permission_see_no_datasets(client_with_perms: Callable[..., Client], django_user_model) -> None:  # type: ignore[no-untyped-def]
    staff = client_with_perms("runs.view_run")
    django_user_model.objects.filter(username__startswith="person").update(is_staff=True)
    assert staff.get("/admin/datasets/dataset/").status_code == 403
