"""Datasets: named sets of cases (inputs, an optional expected output, metadata), kept as numbered,
immutable, content-hashed versions; a case keeps its stable id (`DatasetRow`) across versions."""
from django.conf import settings
from django.db import models


class Dataset(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DatasetRow(models.Model):
    """The identity of one case: its id stays the same in every version that holds the case."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="rows")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"row {self.pk}"


class DatasetVersion(models.Model):
    """One immutable state of a dataset. `content_hash` is the sha256 of its items in order (row ids
    left out, so the same file uploaded twice is the same content); the same content as the latest
    version makes no new version, while going back to an older content is a new one (as in core/versioning.py)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64, help_text="sha256 of the items as canonical JSON lines.")
    row_count = models.PositiveIntegerField(default=0)
    columns = models.JSONField(default=list, help_text="The input names, in the order they first appear.")
    message = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset_id", "-number"]
        constraints = [models.UniqueConstraint(fields=["dataset", "number"], name="dataset_version_number_unique")]
        indexes = [models.Index(fields=["dataset", "content_hash"], name="dataset_version_hash")]

    def __str__(self) -> str:
        return f"{self.dataset} v{self.number}"


class DatasetItem(models.Model):
    """A case as one version holds it. Items are written once, with their version, and never changed."""

    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="items")
    row = models.ForeignKey(DatasetRow, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    inputs = models.JSONField(default=dict)
    expected = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # The case's own assertions (evaluations.checks specs), checked beside the experiment's.
    assertions = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["version_id", "position"]
        # The unique index is also what a version's pages read, in order.
        constraints = [models.UniqueConstraint(fields=["version", "position"], name="dataset_item_position_unique")]

    def __str__(self) -> str:
        return f"{self.version} #{self.position}"
