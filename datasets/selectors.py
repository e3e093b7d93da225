"""Reads of datasets: the list with each one's latest version, a version's items in order."""
from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery

from datasets.models import Dataset, DatasetItem, DatasetVersion


def dataset_list() -> QuerySet[Dataset]:
    latest = DatasetVersion.objects.filter(dataset=OuterRef("pk")).order_by("-number")
    return Dataset.objects.annotate(latest_number=Subquery(latest.values("number")[:1]),
                                    latest_row_count=Subquery(latest.values("row_count")[:1])).order_by("name")


def dataset_versions(dataset: Dataset) -> QuerySet[DatasetVersion]:
    return dataset.versions.select_related("created_by").order_by("-number")


def dataset_version(dataset: Dataset, number: int | None) -> DatasetVersion | None:
    """The version numbered `number`, or the latest when None."""
    versions = dataset.versions.order_by("-number")
    return versions.first() if number is None else versions.filter(number=number).first()


def version_items(version: DatasetVersion) -> QuerySet[DatasetItem]:
    return DatasetItem.objects.filter(version=version).order_by("position")
