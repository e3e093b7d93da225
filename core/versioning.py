"""Numbered, immutable versions of a saved object: the abstract model each app's version table
extends, the content hash, and the one write that appends a version inside the saving transaction."""
import hashlib
import json
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


class VersionBase(models.Model):
    """One saved state of an object. The subclass adds the object FK (SET_NULL: history outlives it)."""

    name = models.CharField(max_length=100, help_text="The object's name when this version was saved.")
    number = models.PositiveIntegerField()
    content = models.JSONField()
    content_hash = models.CharField(max_length=64, help_text="sha256 of the content as canonical JSON.")
    message = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.name} v{self.number}"


def content_hash(content: Any) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _author(user: Any) -> Any:
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def version_write(*, versions: Any, subject: models.Model, content: dict[str, Any],
                  user: Any = None, message: str = "") -> Any:
    """Append a version to `versions` (the subject's related manager) unless the content equals the latest.

    The subject's row is locked first (select_for_update on PostgreSQL; SQLite's writer lock is
    already held), so max+1 is computed by one writer at a time; the (object, number) unique
    constraint is the backstop.
    """
    type(subject)._default_manager.select_for_update().filter(pk=subject.pk).values_list("pk", flat=True).first()
    latest = versions.order_by("-number").values("number", "content_hash").first()
    digest = content_hash(content)
    if latest is not None and latest["content_hash"] == digest:
        return None
    return versions.create(name=str(subject), number=(latest["number"] if latest else 0) + 1, content=content,
                           content_hash=digest, message=message, created_by=_author(user))


def version_history_write(*, versions: Any, history: list[dict[str, Any]], user: Any = None) -> None:
    """Replace the versions of an object just created (by an import) with a history brought from elsewhere,
    oldest first: each entry's name, number, content and message kept, created_at kept unless None (then
    now), the author `user`, the hash recomputed from the content (the one stored is the one checked)."""
    versions.all().delete()
    author = _author(user)
    for entry in history:
        version = versions.create(name=entry["name"], number=entry["number"], content=entry["content"],
                                  content_hash=content_hash(entry["content"]), message=entry["message"],
                                  created_by=author)
        if entry["created_at"] is not None:
            # created_at is auto_now_add: the original time can only be set by an update after the insert.
            versions.filter(pk=version.pk).update(created_at=entry["created_at"])


def restore_message(version: Any, message: str) -> str:
    return f"restored from v{version.number}" + (f": {message}" if message else "")


def initial_versions(*, subjects: Any, version_model: Any, field: str, content: Any) -> None:
    """The data migration's step: every object without a version gets v1, "initial version"."""
    for subject in subjects.filter(versions__isnull=True):
        body = content(subject)
        version_model.objects.create(**{field: subject}, name=subject.name, number=1, content=body,
                                     content_hash=content_hash(body), message="initial version")


def version_missing(kind: str, reference: str) -> ValidationError:
    """A restore that names something deleted since: the error names it."""
    return ValidationError(f"The {kind} “{reference}” this version uses no longer exists.")
