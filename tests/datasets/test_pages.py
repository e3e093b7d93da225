"""The Datasets pages: permissions as on the API, uploads and rows through datasets.services, errors shown;
the run page's "Add to a dataset"."""
from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from datasets.models import DatasetItem, DatasetVersion
from runs.models import RunStatus
from tests.datasets.conftest import make_dataset, stored
from tests.factories import make_run

pytestmark = pytest.mark.django_db


def test_anonymous_visitors_log_in_and_others_need_the_permission(
        client: Client, client_with_perms: Callable[..., Client]) -> None:
    dataset = make_dataset()
    urls = [reverse("datasets:list"), reverse("datasets:detail", args=[dataset.pk])]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url
    stranger = client_with_perms("runs.view_run")
    for url in urls:
        assert stranger.get(url).status_code == 403, url
    reader = client_with_perms("datasets.view_dataset")
    page = reader.get(urls[1])
    assert page.status_code == 200 and b"upload-form" not in page.content
    posts = [(reverse("datasets:upload", args=[dataset.pk]), {"file": SimpleUploadedFile("a.csv", b"q\n1\n")}),
             (reverse("datasets:row-add", args=[dataset.pk]), {"inputs": '{"q": "x"}'}),
             (reverse("datasets:list"), {"name": "other"})]
    for url, data in posts:
        assert reader.post(url, data).status_code == 403, url
    assert stored() == (0, 0, 0)


def test_upload_add_a_row_and_page_through_rows(user_client: Client) -> None:
    created = user_client.post(reverse("datasets:list"), {"name": "qa", "description": ""})
    dataset_url = created["Location"]
    dataset_id = int(dataset_url.rstrip("/").rsplit("/", 1)[1])
    content = b"question,expected\n" + b"".join(b"q%d,a%d\n" % (index, index) for index in range(120))
    uploaded = user_client.post(reverse("datasets:upload", args=[dataset_id]),
                                {"file": SimpleUploadedFile("a.csv", content), "message": "from a file"})
    assert uploaded.status_code == 302
    added = user_client.post(reverse("datasets:row-add", args=[dataset_id]),
                             {"inputs": '{"question": "new"}', "expected": "", "metadata": ""})
    assert added.status_code == 302
    page = user_client.get(f"{dataset_url}?page=3")
    text = page.content.decode()
    assert "Rows of version 2" in text and "Page 3 of 3" in text and "new" in text
    assert [version.row_count for version in DatasetVersion.objects.order_by("number")] == [120, 121]
    listing = user_client.get(reverse("datasets:list")).content.decode()
    assert "qa" in listing and "v2" in listing


def test_a_bad_upload_shows_the_line_and_keeps_nothing(user_client: Client) -> None:
    dataset = make_dataset()
    response = user_client.post(reverse("datasets:upload", args=[dataset.pk]),
                                {"file": SimpleUploadedFile("a.csv", b"a,b\n1,2\n1\n")})
    assert response.status_code == 400
    assert "line 3: 1 fields where the header has 2." in response.content.decode()
    bad_row = user_client.post(reverse("datasets:row-add", args=[dataset.pk]), {"inputs": "[1]"})
    assert bad_row.status_code == 400 and "a JSON object with at least one input" in bad_row.content.decode()
    assert stored() == (0, 0, 0)


def test_a_succeeded_run_becomes_a_case_from_its_page(user_client: Client) -> None:
    dataset = make_dataset()
    run = make_run(workflow_name="qa", status=RunStatus.SUCCEEDED, inputs={"question": "2+2"}, output="4")
    page = user_client.get(reverse("run-detail", args=[run.pk])).content.decode()
    assert 'id="add-to-dataset"' in page and f'<option value="{dataset.pk}">questions</option>' in page
    response = user_client.post(reverse("datasets:from-run", args=[run.pk]), {"dataset": dataset.pk})
    assert response.status_code == 302 and response["Location"].endswith("?version=1")
    item = DatasetItem.objects.get()
    assert (item.inputs, item.expected, item.metadata) == ({"question": "2+2"}, "4", {"run": run.pk, "workflow": "qa"})
    failed = make_run(workflow_name="qa", status=RunStatus.FAILED, inputs={"question": "x"})
    assert 'id="add-to-dataset"' not in user_client.get(reverse("run-detail", args=[failed.pk])).content.decode()
    refused = user_client.post(reverse("datasets:from-run", args=[failed.pk]), {"dataset": dataset.pk}, follow=True)
    assert "only a succeeded run" in refused.content.decode() and DatasetItem.objects.count() == 1


def test_adding_a_run_needs_the_permission_to_change_datasets(client_with_perms: Callable[..., Client]) -> None:
    dataset = make_dataset()
    run = make_run(workflow_name="qa", status=RunStatus.SUCCEEDED, inputs={"q": "x"}, output="y")
    viewer = client_with_perms("runs.view_run", "datasets.view_dataset")
    assert 'id="add-to-dataset"' not in viewer.get(reverse("run-detail", args=[run.pk])).content.decode()
    assert viewer.post(reverse("datasets:from-run", args=[run.pk]), {"dataset": dataset.pk}).status_code == 403
    assert stored() == (0, 0, 0)
