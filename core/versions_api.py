"""The versions routes every versioned resource's viewset shares: list, one version, diff, restore.

`GET {resource}/{id}/versions/`, `GET {resource}/{id}/versions/{n}/`,
`GET {resource}/{id}/versions/{n}/diff/?against=<m>`, `POST {resource}/{id}/versions/{n}/restore/`.
Reading needs the object's view permission, restoring its change permission.
"""
from collections.abc import Callable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from core.history import HistoryLayout, version_diff
from core.permissions import ModelPermissions
from core.serializers import RejectUnknownFieldsMixin, StrictCharField


class VersionSummarySerializer(serializers.Serializer):
    number = serializers.IntegerField(read_only=True)
    message = serializers.CharField(read_only=True)
    author = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None,
                                   help_text="Who saved it; null when unknown (the data migration, the CLI).")
    created_at = serializers.DateTimeField(read_only=True)
    content_hash = serializers.CharField(read_only=True, help_text="sha256 of the content as canonical JSON.")


class VersionDetailSerializer(VersionSummarySerializer):
    name = serializers.CharField(read_only=True, help_text="The object's name when this version was saved.")
    content = serializers.JSONField(read_only=True, help_text="The full content of the object at this version.")


class VersionRestoreSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    message = StrictCharField(required=False, allow_blank=True, default="",
                              help_text='Why; the new version\'s message is "restored from vN: <message>".')


class VersionMessageField(StrictCharField):
    """The write-only `version_message` of a save: the message of the version the save makes."""

    def __init__(self) -> None:
        super().__init__(write_only=True, required=False, allow_blank=True, default="",
                         help_text="Why this change: the message of the version this save makes.")


class ChangePermissionToRestore(ModelPermissions):
    """Restoring is a change of the object, although it is a POST."""

    perms_map = {**ModelPermissions.perms_map, "POST": ["%(app_label)s.change_%(model_name)s"]}


NUMBER = OpenApiParameter("number", OpenApiTypes.INT, OpenApiParameter.PATH, description="The version number (1, 2, ...).")
AGAINST = OpenApiParameter("against", OpenApiTypes.INT, OpenApiParameter.QUERY, required=False,
                           description="The version number to compare with; default: the latest.")


class DiffSideSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    message = serializers.CharField()
    author = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    content_hash = serializers.CharField()


class DiffSegmentSerializer(serializers.Serializer):
    text = serializers.CharField()
    changed = serializers.BooleanField()


class TextDiffSerializer(serializers.Serializer):
    name = serializers.CharField()
    changed_words = serializers.IntegerField()
    old = DiffSegmentSerializer(many=True)
    new = DiffSegmentSerializer(many=True)


class FieldDiffSerializer(serializers.Serializer):
    name = serializers.CharField()
    old = serializers.CharField()
    new = serializers.CharField()
    changed = serializers.BooleanField()


class ListDiffSerializer(serializers.Serializer):
    name = serializers.CharField()
    old = serializers.ListField(child=serializers.CharField())
    new = serializers.ListField(child=serializers.CharField())
    changed = serializers.BooleanField()


class VersionDiffSerializer(serializers.Serializer):
    """Two versions compared, the older on the left (`old`): texts word by word, fields, ordered lists."""

    old = DiffSideSerializer()
    new = DiffSideSerializer()
    changed = serializers.IntegerField(help_text="How many texts, fields and lists differ.")
    texts = TextDiffSerializer(many=True)
    fields = FieldDiffSerializer(many=True)
    lists = ListDiffSerializer(many=True)


class VersionsMixin:
    """Adds the versions routes to a ModelViewSet whose model has a `versions` relation."""

    # The app's <entity>_version_restore service: (version=..., user=..., message=...) -> the object.
    version_restore_service: Callable[..., Any]
    # Which content keys are texts and ordered lists (the app's History page layout); the rest are fields.
    version_layout: HistoryLayout = HistoryLayout()

    def _version(self, number: str, subject: Any = None) -> Any:
        subject = subject if subject is not None else self.get_object()  # type: ignore[attr-defined]
        # A number past the column's range names no version (and would be a database error on PostgreSQL).
        version = (subject.versions.select_related("created_by").filter(number=int(number)).first()
                   if int(number) < 2**31 else None)
        if version is None:
            raise NotFound(f"“{subject}” has no version {number}; GET its versions/ to list them.")
        return version

    def _against(self, subject: Any, against: str | None) -> Any:
        if against in (None, ""):
            latest = subject.versions.select_related("created_by").order_by("-number").first()
            if latest is None:
                raise NotFound(f"“{subject}” has no versions.")
            return latest
        if not against.strip().isdigit():
            raise ValidationError({"against": [f"“{against}” is not a version number."]})
        return self._version(against.strip(), subject)

    @extend_schema(request=None, responses=VersionSummarySerializer(many=True))
    @action(detail=True, methods=["get"], url_path="versions", url_name="versions")
    def versions(self, request: Request, pk: str | None = None, format: str | None = None) -> Response:
        """Every saved version of this object, newest first (not paginated)."""
        subject = self.get_object()  # type: ignore[attr-defined]
        return Response(VersionSummarySerializer(subject.versions.select_related("created_by").order_by("-number"),
                                                 many=True).data)

    @extend_schema(request=None, parameters=[NUMBER],
                   responses={200: VersionDetailSerializer, 404: OpenApiResponse(description="No such version.")})
    @action(detail=True, methods=["get"], url_path=r"versions/(?P<number>[0-9]+)", url_name="version")
    def version(self, request: Request, pk: str | None = None, number: str = "", format: str | None = None) -> Response:
        """One version with its full content."""
        return Response(VersionDetailSerializer(self._version(number)).data)

    @extend_schema(request=None, parameters=[NUMBER, AGAINST],
                   responses={200: VersionDiffSerializer, 400: OpenApiResponse(description="`against` is not a number."),
                              404: OpenApiResponse(description="No such version (named).")})
    @action(detail=True, methods=["get"], url_path=r"versions/(?P<number>[0-9]+)/diff", url_name="version-diff")
    def version_diff(self, request: Request, pk: str | None = None, number: str = "",
                     format: str | None = None) -> Response:
        """This version against another (`?against=<m>`, default the latest), the older on the left."""
        subject = self.get_object()  # type: ignore[attr-defined]
        version = self._version(number, subject)
        other = self._against(subject, request.query_params.get("against"))
        old, new = sorted([version, other], key=lambda v: v.number)
        return Response(version_diff(old, new, layout=type(self).version_layout).as_dict())

    @extend_schema(request=VersionRestoreSerializer, parameters=[NUMBER],
                   responses={200: VersionDetailSerializer, 400: OpenApiResponse(description="Something the version "
                              "uses no longer exists (named), or the content no longer validates."),
                              404: OpenApiResponse(description="No such version.")})
    @action(detail=True, methods=["post"], url_path=r"versions/(?P<number>[0-9]+)/restore", url_name="version-restore",
            permission_classes=[ChangePermissionToRestore])
    def restore(self, request: Request, pk: str | None = None, number: str = "", format: str | None = None) -> Response:
        """Make this version current again, saved as a new version ("restored from vN"). Answers with the
        latest version (the one restored from, unchanged, if the object already had this content)."""
        version = self._version(number)
        body = VersionRestoreSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        subject = type(self).version_restore_service(version=version, user=request.user,
                                                     message=body.validated_data["message"])
        latest = subject.versions.select_related("created_by").order_by("-number").first()
        return Response(VersionDetailSerializer(latest).data)
