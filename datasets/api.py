"""/api/datasets/: datasets, their versions, a version's rows, row edits and uploads. Writes go
through datasets.services; a new version needs the permission to change datasets."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from core.pagination import Pagination
from core.permissions import ModelPermissions
from datasets import selectors, services
from datasets.importing import cases_read
from datasets.models import Dataset, DatasetVersion
from datasets.serializers import (
    DatasetItemSerializer,
    DatasetSerializer,
    DatasetVersionSerializer,
    ImportSerializer,
    RowsAddSerializer,
    RowsChangeSerializer,
)
from datasets.uploads import UploadTooLarge, upload_handlers_set

VERSION = OpenApiParameter("version", OpenApiTypes.INT, OpenApiParameter.QUERY, required=False,
                           description="The version's number; the latest by default.")


class ChangePermissions(ModelPermissions):
    """A new version of a dataset changes it: writes need datasets.change_dataset."""

    perms_map = {**ModelPermissions.perms_map, "POST": ["%(app_label)s.change_%(model_name)s"]}


def _version_response(version: DatasetVersion, created: bool) -> Response:
    return Response({**DatasetVersionSerializer(version).data, "created": created},
                    status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class DatasetViewSet(viewsets.ModelViewSet):
    """Datasets: named sets of cases kept as numbered, content-hashed versions. Editing rows or uploading a
    file makes a new version (201), or none when the content equals the latest version's (200)."""

    serializer_class = DatasetSerializer
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at", "updated_at"]

    def get_queryset(self) -> QuerySet[Dataset]:
        return selectors.dataset_list()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if self.action == "import_file":
            # Before authentication: the session's CSRF check reads the body.
            if int(request.META.get("CONTENT_LENGTH") or 0) > settings.DATASET_UPLOAD_MAX_BYTES + 64 * 1024:
                raise UploadTooLarge()
            upload_handlers_set(request._request)
        super().initial(request, *args, **kwargs)

    def _fresh(self, pk: int) -> Response:
        return Response(self.get_serializer(selectors.dataset_list().get(pk=pk)).data)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        dataset = services.dataset_create(user=request.user, **serializer.validated_data)
        return Response(self._fresh(dataset.pk).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        dataset = self.get_object()
        serializer = self.get_serializer(dataset, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        services.dataset_update(dataset=dataset, fields=serializer.validated_data)
        return self._fresh(dataset.pk)

    def perform_destroy(self, instance: Dataset) -> None:
        services.dataset_delete(dataset=instance)

    @extend_schema(responses=DatasetVersionSerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=Pagination)
    def versions(self, request: Request, pk: str | None = None, format: str | None = None) -> Response:
        """The dataset's versions, newest first."""
        page = self.paginate_queryset(selectors.dataset_versions(self.get_object()))
        return self.get_paginated_response(DatasetVersionSerializer(page, many=True).data)

    @extend_schema(responses=DatasetVersionSerializer,
                   parameters=[OpenApiParameter("number", OpenApiTypes.INT, OpenApiParameter.PATH)])
    @action(detail=True, methods=["get"], url_path=r"versions/(?P<number>[0-9]{1,9})", filter_backends=[])
    def version(self, request: Request, pk: str | None = None, number: str = "", format: str | None = None) -> Response:
        """One version of the dataset, by its number."""
        version = selectors.dataset_version(self.get_object(), int(number))
        if version is None:
            raise NotFound(f"The dataset has no version {number}.")
        return Response(DatasetVersionSerializer(version).data)

    def _version_asked(self, dataset: Dataset) -> DatasetVersion | None:
        asked = self.request.query_params.get("version", "")
        if asked and not (asked.isdigit() and len(asked) < 10):
            raise ValidationError({"version": [f"“{asked}” is not a version number."]})
        version = selectors.dataset_version(dataset, int(asked) if asked else None)
        if version is None and asked:
            raise NotFound(f"The dataset has no version {asked}.")
        return version

    @extend_schema(methods=["GET"], parameters=[VERSION], responses=DatasetItemSerializer(many=True))
    @extend_schema(methods=["POST"], request=RowsAddSerializer,
                   responses={201: DatasetVersionSerializer, 200: DatasetVersionSerializer})
    @action(detail=True, methods=["get", "post"], filter_backends=[], pagination_class=Pagination,
            permission_classes=[ChangePermissions])
    def rows(self, request: Request, pk: str | None = None, format: str | None = None) -> Response:
        """GET: a version's rows in order (paged). POST: add one case, a list of cases, or `{"rows": [...], "message": ...}`:
        a new version."""
        dataset = self.get_object()
        if request.method == "GET":
            version = self._version_asked(dataset)
            items = selectors.version_items(version) if version else []
            page = self.paginate_queryset(items)
            return self.get_paginated_response(DatasetItemSerializer(page, many=True).data)
        data = request.data
        # A list of cases, one case, or {"rows": [...], "message": ...}.
        body = {"rows": data} if isinstance(data, list) else {"rows": [data]} if isinstance(data, dict) and "inputs" in data else data
        serializer = RowsAddSerializer(data=body)
        serializer.is_valid(raise_exception=True)
        version, created = services.dataset_rows_change(dataset=dataset, add=serializer.validated_data["rows"],
                                                        message=serializer.validated_data["message"], user=request.user)
        return _version_response(version, created)

    @extend_schema(request=RowsChangeSerializer, responses={201: DatasetVersionSerializer, 200: DatasetVersionSerializer})
    @action(detail=True, methods=["post"], url_path="rows/change", permission_classes=[ChangePermissions])
    def rows_change(self, request: Request, pk: str | None = None, format: str | None = None) -> Response:
        """Add, change (by row id, the given fields replaced) and delete rows at once: one new version."""
        dataset = self.get_object()
        serializer = RowsChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version, created = services.dataset_rows_change(dataset=dataset, user=request.user, **serializer.validated_data)
        return _version_response(version, created)

    @extend_schema(request={"multipart/form-data": ImportSerializer},
                   responses={201: DatasetVersionSerializer, 200: DatasetVersionSerializer,
                              400: OpenApiResponse(description="A bad file: the message names the line or field."),
                              413: OpenApiResponse(description="Over DATASET_UPLOAD_MAX_BYTES.")})
    @action(detail=True, methods=["post"], url_path="import", parser_classes=[MultiPartParser],
            permission_classes=[ChangePermissions])
    def import_file(self, request: Request, pk: str | None = None, format: str | None = None) -> Response:
        """Upload a CSV or JSONL file (multipart `file`): its rows become the dataset's new version, whole or not at all."""
        dataset = self.get_object()
        serializer = ImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        if upload.size > settings.DATASET_UPLOAD_MAX_BYTES:
            raise UploadTooLarge()
        upload.seek(0)
        cases = cases_read(upload.file, file_format=serializer.validated_data["format"],
                           expected_column=serializer.validated_data["expected_column"])
        version, created = services.dataset_version_create(dataset=dataset, cases=cases, user=request.user,
                                                           message=serializer.validated_data["message"])
        return _version_response(version, created)
