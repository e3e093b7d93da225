"""Helpers of the datasets tests: a dataset made through datasets.services, an upload over the API."""
from __future__ import annotations

from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from datasets.models import Dataset, DatasetItem, DatasetRow, DatasetVersion
from datasets.services import dataset_create


def make_dataset(name: str = "questions") -> Dataset:
    return dataset_create(name=name, description="")


def upload(api: APIClient, dataset: Dataset, content: bytes, *, name: str = "cases.csv", **fields: Any) -> Any:
    body = {"file": SimpleUploadedFile(name, content), **fields}
    return api.post(f"/api/datasets/{dataset.pk}/import/", body, format="multipart")


def stored() -> tuple[int, int, int]:
    """(versions, rows, items) in the database: what a refused upload must leave unchanged."""
    return DatasetVersion.objects.count(), DatasetRow.objects.count(), DatasetItem.objects.count()
