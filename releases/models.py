"""Releases: a workflow's whole tree as it runs, content-hashed, which every run points at; and
labels, named pointers from a workflow to one of its releases, whose every move is kept."""
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from blocks.models import BlockVersion
from payloads.models import PayloadVersion
from workflows.models import Workflow, WorkflowVersion

LABEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
LABEL_NAME_MAX = 50


def validate_label_name(value: str) -> None:
    if len(value or "") > LABEL_NAME_MAX:
        raise ValidationError(f"A label name has at most {LABEL_NAME_MAX} characters; this one has {len(value)}.")
    if not LABEL_NAME_RE.match(value or ""):
        raise ValidationError(f"“{value}” is not a label name: use letters, digits, '.', '_' and '-' "
                              "(no spaces), starting with a letter or digit.")


class Release(models.Model):
    """The tree a run runs: the workflow with every payload and block as resolved at the start.

    `snapshot` is exactly what a run of this release executes; `content_hash` is its sha256, so
    identical trees share one release. The version relations say which saved versions it was
    resolved from (a version that changed only a description is not a new release).
    """

    workflow = models.ForeignKey(Workflow, null=True, on_delete=models.SET_NULL, related_name="releases")
    workflow_name = models.CharField(max_length=100)
    number = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64, help_text="sha256 of the snapshot as canonical JSON.")
    snapshot = models.JSONField(help_text="The tree as it runs: steps, payload settings, endpoints, block texts.")
    workflow_version = models.ForeignKey(WorkflowVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="releases")
    payload_versions = models.ManyToManyField(PayloadVersion, blank=True, related_name="releases")
    block_versions = models.ManyToManyField(BlockVersion, blank=True, related_name="releases")
    steps = models.JSONField(default=list, help_text="Per step: the payload version and block versions it used.")
    message = models.TextField(blank=True, default="")
    cut_by_hand = models.BooleanField(default=False, help_text="Cut by a person rather than by a run's start.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["workflow_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "number"], name="release_number_unique"),
            models.UniqueConstraint(fields=["workflow", "content_hash"], name="release_hash_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.workflow_name} r{self.number}"


class Label(models.Model):
    """A named pointer (`production`, `staging`, ...) from a workflow to one of its releases."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=LABEL_NAME_MAX, validators=[validate_label_name])
    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="labels")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["workflow_id", "name"]
        constraints = [models.UniqueConstraint(fields=["workflow", "name"], name="label_name_unique")]

    def __str__(self) -> str:
        return f"{self.name} → {self.release}"


class LabelMove(models.Model):
    """One creation, move or deletion of a label: append-only (no page, route or admin changes one)."""

    workflow = models.ForeignKey(Workflow, null=True, on_delete=models.SET_NULL, related_name="label_moves")
    workflow_name = models.CharField(max_length=100)
    label = models.CharField(max_length=LABEL_NAME_MAX, db_index=True)
    from_release = models.ForeignKey(Release, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                     help_text="Empty when the label was created.")
    to_release = models.ForeignKey(Release, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                   help_text="Empty when the label was deleted.")
    reason = models.TextField(blank=True, default="")
    moved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    moved_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-moved_at", "-id"]

    def __str__(self) -> str:
        return f"{self.label}: {self.from_release or '—'} → {self.to_release or '—'}"

    @property
    def action(self) -> str:
        return "created" if self.from_release_id is None else "deleted" if self.to_release_id is None else "moved"
