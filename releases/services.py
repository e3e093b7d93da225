"""Releases and labels: finding or cutting the release of a workflow's tree, and moving labels.

A run's start calls `release_for_run` on every run's path: the tree's snapshot (which the start
builds anyway) is hashed, and one compiled, indexed SELECT finds the release. Only a tree seen for
the first time resolves its versions and writes a release, so versions cost a hash per run.
"""
from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max

from blocks.models import BlockVersion
from core.sql import CompiledValues
from core.versioning import content_hash
from payloads.models import PayloadBlock, PayloadVersion
from releases.models import Label, LabelMove, Release, validate_label_name
from workflows.models import Workflow
from workflows.services import workflow_problems, workflow_snapshot, workflow_steps

_release_by_hash = CompiledValues(lambda workflow_id, digest: Release.objects.filter(
    workflow_id=workflow_id, content_hash=digest).values("id"))


def _author(user: Any) -> Any:
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def _latest(model: Any, field: str, ids: list[int]) -> dict[int, Any]:
    """The latest version of each object: {object id: version}."""
    numbers = dict(model.objects.filter(**{f"{field}__in": ids}).values(field).annotate(latest=Max("number"))
                   .values_list(field, "latest"))
    found = model.objects.filter(**{f"{field}__in": numbers}).filter(
        number__in=set(numbers.values())).only("id", "number", field)
    return {getattr(v, f"{field}_id"): v for v in found if numbers[getattr(v, f"{field}_id")] == v.number}


def _resolved_versions(workflow: Workflow, snapshot: dict[str, Any]) -> tuple[Any, list[Any], list[Any], list[dict[str, Any]]]:
    """The saved versions the tree resolves to now: the workflow's, each payload's, each block's."""
    payload_ids = list(dict.fromkeys(step["payload"]["id"] for step in snapshot["steps"]))
    uses: dict[int, list[int]] = {pk: [] for pk in payload_ids}
    for payload_id, block_id in (PayloadBlock.objects.filter(payload_id__in=payload_ids)
                                 .order_by("position", "id").values_list("payload_id", "block_id")):
        uses[payload_id].append(block_id)
    payloads = _latest(PayloadVersion, "payload", payload_ids)
    blocks = _latest(BlockVersion, "block", sorted({b for ids in uses.values() for b in ids}))
    workflow_version = workflow.versions.order_by("-number").first()
    steps = []
    for step in snapshot["steps"]:
        payload_version = payloads.get(step["payload"]["id"])
        steps.append({
            "index": step["index"], "output_key": step["output_key"], "payload_id": step["payload"]["id"],
            "payload_version": payload_version.number if payload_version else None,
            "payload_version_id": payload_version.pk if payload_version else None,
            "blocks": [{"block_id": b, "block_version": blocks[b].number if b in blocks else None,
                        "block_version_id": blocks[b].pk if b in blocks else None}
                       for b in uses[step["payload"]["id"]]],
        })
    return workflow_version, list(payloads.values()), list(blocks.values()), steps


def _release_create(*, workflow: Workflow, snapshot: dict[str, Any], digest: str, user: Any = None,
                    message: str = "", by_hand: bool = False) -> Release:
    """Write the release of a tree not seen before. The workflow's row is locked first so numbers
    are consecutive; a concurrent start that wrote the same tree meanwhile is found, not duplicated."""
    Workflow.objects.select_for_update().filter(pk=workflow.pk).values_list("pk", flat=True).first()
    existing = Release.objects.filter(workflow=workflow, content_hash=digest).first()
    if existing is not None:
        return existing
    workflow_version, payload_versions, block_versions, steps = _resolved_versions(workflow, snapshot)
    latest = Release.objects.filter(workflow=workflow).aggregate(n=Max("number"))["n"] or 0
    release = Release.objects.create(
        workflow=workflow, workflow_name=workflow.name, number=latest + 1, content_hash=digest, snapshot=snapshot,
        workflow_version=workflow_version, steps=steps, message=message, cut_by_hand=by_hand, created_by=_author(user))
    release.payload_versions.set(payload_versions)
    release.block_versions.set(block_versions)
    return release


def release_for_run(*, workflow: Workflow, snapshot: dict[str, Any], user: Any = None) -> int:
    """The id of the release of this tree (inside the run start's transaction): found by hash, or written."""
    digest = content_hash(snapshot)
    found = _release_by_hash.rows(workflow.pk, digest)
    if found:
        return found[0]["id"]
    try:
        with transaction.atomic():
            return _release_create(workflow=workflow, snapshot=snapshot, digest=digest, user=user).pk
    except IntegrityError:  # a concurrent start (PostgreSQL) wrote it between our read and our write
        return Release.objects.get(workflow=workflow, content_hash=digest).pk


@transaction.atomic
def release_cut(*, workflow: Workflow, user: Any = None, message: str = "") -> tuple[Release, bool]:
    """Cut a release of the tree as it stands, by hand. A tree that already has a release gets no
    second one: that release is answered (with this message if it had none), and created is False."""
    steps = workflow_steps(workflow)
    problems = workflow_problems(workflow, steps=steps)
    if problems:
        raise ValidationError({"workflow": [p["message"] for p in problems]})
    snapshot = workflow_snapshot(workflow, steps=steps)
    digest = content_hash(snapshot)
    existing = Release.objects.filter(workflow=workflow, content_hash=digest).first()
    if existing is not None:
        if message and not existing.message:
            existing.message = message
            existing.save(update_fields=["message"])
        return existing, False
    return _release_create(workflow=workflow, snapshot=snapshot, digest=digest, user=user, message=message,
                           by_hand=True), True


# --- Labels ---------------------------------------------------------------------------------------

def _label_name(name: str) -> str:
    try:
        validate_label_name(name)
    except ValidationError as error:
        raise ValidationError({"name": error.messages}) from None
    return name


@transaction.atomic
def label_set(*, workflow: Workflow, name: str, release: Release, user: Any = None, reason: str = "",
              may_create: bool = True, may_move: bool = True) -> tuple[Label, bool]:
    """Point the label at the release, creating the label if needed; logged. (label, created).

    Creating and moving are separate permissions: a caller allowed only one says so, and the check
    is made here, on the label's locked row, so a label created meanwhile is not moved by someone
    allowed only to create."""
    _label_name(name)
    if release.workflow_id != workflow.pk:
        raise ValidationError({"release": [f"Release {release.pk} ({release}) belongs to another workflow, "
                                           f"not to “{workflow}”."]})
    label = Label.objects.select_for_update().filter(workflow=workflow, name=name).first()
    created = label is None
    if created and not may_create:
        raise PermissionDenied("Creating a label needs the permission releases.add_label.")
    if not created and not may_move:
        raise PermissionDenied(f"“{name}” exists: moving a label needs the permission releases.change_label.")
    if created:
        label = Label(workflow=workflow, name=name, release=release, updated_by=_author(user))
    elif label.release_id == release.pk:
        return label, False
    previous = None if created else label.release_id
    label.release, label.updated_by = release, _author(user)
    label.save()
    LabelMove.objects.create(workflow=workflow, workflow_name=workflow.name, label=name, from_release_id=previous,
                             to_release=release, reason=reason, moved_by=_author(user))
    return label, created


@transaction.atomic
def label_delete(*, label: Label, user: Any = None, reason: str = "") -> None:
    LabelMove.objects.create(workflow=label.workflow, workflow_name=label.workflow.name, label=label.name,
                             from_release_id=label.release_id, to_release=None, reason=reason, moved_by=_author(user))
    label.delete()


def label_release(*, workflow: Workflow, name: str) -> Release:
    """The release a label points at; a ValidationError naming the label if it has none."""
    label = Label.objects.select_related("release").filter(workflow=workflow, name=name).first()
    if label is None:
        names = list(Label.objects.filter(workflow=workflow).values_list("name", flat=True))
        raise ValidationError({"label": [f"“{workflow}” has no label “{name}”"
                                         + (f"; its labels: {', '.join(names)}." if names else "; it has no labels.")]})
    return label.release
