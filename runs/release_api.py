"""The API of releases and labels: `/api/workflows/{id}/releases/`, `/api/releases/{id}/` (with `diff/`),
`/api/workflows/{id}/labels/`, `.../labels/{name}/` and `.../label-history/`.

It lives in runs/ rather than releases/: a release is listed with how its runs did
(runs.selectors.release_impact), and releases/ may not import runs (tests/core/test_imports.py).
"""
from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from core.converters import MAX_ID
from core.permissions import ModelPermissions
from releases.filters import LabelMoveFilter
from releases.models import Label, LabelMove, Release
from releases.selectors import label_history, release_list, release_previous, tree_diff
from releases.serializers import (
    LabelDeleteSerializer,
    LabelMoveSerializer,
    LabelSerializer,
    LabelSetSerializer,
    ReleaseCutSerializer,
    ReleaseDetailSerializer,
    ReleaseDiffSerializer,
    ReleaseSerializer,
)
from releases.services import label_delete, label_set, release_cut
from runs.selectors import release_impact, release_run_count
from workflows.models import Workflow

WORKFLOW_ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The workflow's id.")
LABEL_NAME = OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH,
                              description="The label's name (production, staging, ...).")


def _impact(releases: Any) -> dict[str, Any]:
    """The serializers' context: how each release did."""
    return {"impact": release_impact([release.pk for release in releases])}


def _ref(release: Release | None) -> dict[str, Any] | None:
    return None if release is None else {"id": release.pk, "number": release.number}


class _WorkflowScoped:
    kwargs: dict[str, Any]

    def _workflow(self) -> Workflow:
        return get_object_or_404(Workflow, pk=self.kwargs["pk"])


@extend_schema(parameters=[WORKFLOW_ID])
class WorkflowReleasesView(_WorkflowScoped, generics.ListCreateAPIView):
    """The workflow's releases newest first, each with how its runs did (GET); cut one by hand (POST):
    201 with the new release, or 200 with the release the tree as it stands already has."""

    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[Release]:
        # By id, without a 404: the permission check reads the queryset before the view runs.
        return release_list(self.kwargs.get("pk", 0)).defer("snapshot", "steps")

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        return ReleaseCutSerializer if self.request.method == "POST" else ReleaseSerializer

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self._workflow()  # an unknown workflow is a 404, not an empty list
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ReleaseSerializer(page, many=True, context=_impact(page)).data)

    @extend_schema(request=ReleaseCutSerializer, responses={
        201: ReleaseSerializer, 200: ReleaseSerializer,
        400: OpenApiResponse(description="The workflow cannot run as it stands (`workflow` names the problems).")})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        workflow = self._workflow()
        body = ReleaseCutSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        release, created = release_cut(workflow=workflow, user=request.user, message=body.validated_data["message"])
        release = self.get_queryset().get(pk=release.pk)
        return Response(ReleaseSerializer(release, context=_impact([release])).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ReleaseViewSet(viewsets.ReadOnlyModelViewSet):
    """Releases: a workflow's whole tree as its runs ran it, content-hashed. One release has its tree
    (`snapshot`), the payload and block versions of each step, its labels, how its runs did and where they are."""

    filter_backends = [DjangoFilterBackend]
    filterset_fields = ["workflow"]

    def get_queryset(self) -> QuerySet[Release]:
        releases = (Release.objects.select_related("created_by", "workflow_version").prefetch_related("labels")
                    .order_by("-created_at", "-id"))
        return releases.defer("snapshot", "steps") if self.action == "list" else releases

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        return ReleaseSerializer if self.action == "list" else ReleaseDetailSerializer

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(ReleaseSerializer(page, many=True, context=_impact(page)).data)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        release = self.get_object()
        runs_url = request.build_absolute_uri(f"{reverse('api-run-list')}?release={release.pk}")
        return Response(ReleaseDetailSerializer(release, context={
            **_impact([release]), "runs_url": runs_url, "runs_count": release_run_count(release.pk)}).data)

    @extend_schema(request=None, parameters=[OpenApiParameter(
        "against", OpenApiTypes.INT, OpenApiParameter.QUERY, required=False,
        description="The id of the release to compare with; default: the workflow's release before this one.")],
        responses={200: ReleaseDiffSerializer, 400: OpenApiResponse(description="`against` is not an id."),
                   404: OpenApiResponse(description="No such release (named).")})
    @action(detail=True, methods=["get"])
    def diff(self, request: Request, pk: str | None = None, format: str | None = None) -> Response:
        """This release against another, the older on the left: inputs, steps added, removed, moved or
        changed, each step's settings field by field and its blocks word by word."""
        release = self.get_object()
        against = (request.query_params.get("against") or "").strip()
        if not against:
            other = release_previous(release)
        elif not against.isdigit() or int(against) > MAX_ID:
            raise ValidationError({"against": [f"“{against}” is not a release id."]})
        else:
            other = Release.objects.filter(pk=int(against)).first()
            if other is None:
                raise NotFound(f"No release {against} to compare with.")
        old, new = (None, release) if other is None else sorted([release, other], key=lambda r: r.pk)
        return Response({"old": _ref(old), "new": _ref(new), **tree_diff(old.snapshot if old else {}, new.snapshot).as_dict()})


@extend_schema(parameters=[WORKFLOW_ID])
class WorkflowLabelsView(_WorkflowScoped, generics.ListAPIView):
    """The workflow's labels, by name, each with the release it points at (not paginated)."""

    serializer_class = LabelSerializer
    filter_backends: list[Any] = []
    pagination_class = None

    def get_queryset(self) -> QuerySet[Label]:
        return (Label.objects.filter(workflow_id=self.kwargs.get("pk", 0)).select_related("release", "updated_by")
                .order_by("name"))

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self._workflow()
        return super().list(request, *args, **kwargs)


class LabelPermissions(ModelPermissions):
    """PUT creates a label (releases.add_label) or moves one (releases.change_label): the view asks which."""

    perms_map = {**ModelPermissions.perms_map, "PUT": []}


@extend_schema(parameters=[WORKFLOW_ID, LABEL_NAME])
class WorkflowLabelView(_WorkflowScoped, generics.GenericAPIView):
    """One label. PUT {"release": id, "reason": "..."} creates it or moves it (rollback is a move back to
    the older release); DELETE removes it (reason in the body or ?reason=). Every change is logged."""

    permission_classes = [LabelPermissions]
    filter_backends: list[Any] = []
    pagination_class = None

    def get_queryset(self) -> QuerySet[Label]:
        return Label.objects.filter(workflow_id=self.kwargs.get("pk", 0)).select_related("release", "updated_by")

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        return LabelSetSerializer if self.request.method == "PUT" else LabelSerializer

    def _label(self, workflow: Workflow) -> Label:
        label = self.get_queryset().filter(name=self.kwargs["name"]).first()
        if label is None:
            raise NotFound(f"“{workflow}” has no label “{self.kwargs['name']}”.")
        return label

    @extend_schema(responses={200: LabelSerializer, 404: OpenApiResponse(description="No such label.")})
    def get(self, request: Request, pk: int, name: str) -> Response:
        return Response(LabelSerializer(self._label(self._workflow())).data)

    @extend_schema(request=LabelSetSerializer, responses={
        200: LabelSerializer, 201: LabelSerializer,
        400: OpenApiResponse(description="A bad name (`name`), an unknown release or another workflow's (`release`).")})
    def put(self, request: Request, pk: int, name: str) -> Response:
        workflow = self._workflow()
        exists = Label.objects.filter(workflow=workflow, name=name).exists()
        needed = "releases.change_label" if exists else "releases.add_label"
        if not request.user.has_perm(needed):
            raise PermissionDenied(f"{'Moving' if exists else 'Creating'} a label needs the permission {needed}.")
        body = LabelSetSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        label, created = label_set(workflow=workflow, name=name, release=body.validated_data["release"],
                                   user=request.user, reason=body.validated_data["reason"],
                                   may_create=request.user.has_perm("releases.add_label"),
                                   may_move=request.user.has_perm("releases.change_label"))
        label = self.get_queryset().get(pk=label.pk)
        return Response(LabelSerializer(label).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=LabelDeleteSerializer, parameters=[OpenApiParameter(
        "reason", OpenApiTypes.STR, OpenApiParameter.QUERY, required=False, description="Why (or in the body).")],
        responses={204: None, 404: OpenApiResponse(description="No such label.")})
    def delete(self, request: Request, pk: int, name: str) -> Response:
        label = self._label(self._workflow())
        data = request.data if isinstance(request.data, dict) and request.data else {}
        body = LabelDeleteSerializer(data=data or {"reason": request.query_params.get("reason", "")})
        body.is_valid(raise_exception=True)
        label_delete(label=label, user=request.user, reason=body.validated_data["reason"])
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=[WORKFLOW_ID])
class WorkflowLabelHistoryView(_WorkflowScoped, generics.ListAPIView):
    """Every creation, move and deletion of the workflow's labels, newest first (?label= for one label):
    who, from which release, to which, when, why. Append-only."""

    serializer_class = LabelMoveSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = LabelMoveFilter

    def get_queryset(self) -> QuerySet[LabelMove]:
        return label_history(self.kwargs.get("pk", 0))

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self._workflow()
        return super().list(request, *args, **kwargs)
