from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from core.versions_api import VersionsMixin
from payloads.models import Payload
from workflows import portability, services
from workflows.filters import WorkflowFilter
from workflows.models import Workflow
from workflows.selectors import WORKFLOW_HISTORY
from workflows.serializers import WorkflowSerializer, WorkflowValidationSerializer


class WorkflowExportQuerySerializer(serializers.Serializer):
    with_history = serializers.BooleanField(default=False, help_text="Add every version, oldest first (format version 2).")


class WorkflowImportSerializer(serializers.Serializer):
    document = serializers.JSONField(help_text="What GET /api/workflows/{id}/export/ returned (with or without history).")
    create_missing_endpoints = serializers.BooleanField(default=False)


class WorkflowViewSet(VersionsMixin, viewsets.ModelViewSet):
    """Ordered chains of payloads. A workflow may be saved with problems; it cannot run until they are fixed."""

    serializer_class = WorkflowSerializer
    version_restore_service = staticmethod(services.workflow_version_restore)
    version_layout = WORKFLOW_HISTORY
    filterset_class = WorkflowFilter
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at", "updated_at", "id"]

    def get_queryset(self) -> QuerySet[Workflow]:
        return Workflow.objects.prefetch_related("steps__payload")

    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        workflow = services.workflow_create(steps=fields.pop("steps", []), user=request.user,
                                            message=fields.pop("version_message", ""), **fields)
        return Response(self.get_serializer(self._fresh(workflow)).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: object, **kwargs: object) -> Response:
        serializer = self.get_serializer(self.get_object(), data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        workflow = services.workflow_update(workflow=serializer.instance, steps=fields.pop("steps", None),
                                            user=request.user, message=fields.pop("version_message", ""), data=fields)
        return Response(self.get_serializer(self._fresh(workflow)).data)

    @extend_schema(request=None, responses=WorkflowValidationSerializer)
    @action(detail=True, methods=["get"])
    def validate(self, request: Request, pk: str | None = None, format: str | None = None) -> Response:
        """Every variable no input or earlier step provides (naming step and block, or the step's `when`,
        `for_each` or `as` field), other problems, and warnings that do not stop a run."""
        workflow = self.get_object()
        steps = services.workflow_steps(workflow)
        problems = services.workflow_problems(workflow, steps=steps)
        return Response({"valid": not problems, "problems": problems,
                         "warnings": services.workflow_warnings(workflow, steps=steps)})

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT},
                   parameters=[OpenApiParameter("with_history", OpenApiTypes.BOOL, description="Add every version.")])
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str | None = None, format: str | None = None) -> Response:
        """The workflow with its payloads, blocks and endpoint references (never keys) as one JSON document;
        `?with_history=1` adds each one's versions, oldest first."""
        query = WorkflowExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(portability.workflow_export(self.get_object(),
                                                    with_history=query.validated_data["with_history"]))

    @extend_schema(request=WorkflowImportSerializer, responses={201: OpenApiTypes.OBJECT})
    @action(detail=False, methods=["post"], url_path="import", url_name="import")
    def import_(self, request: Request, format: str | None = None) -> Response:
        """Import an export: identical blocks and payloads are reused, a different one of the same name gets
        a suffixed name, endpoints are matched by name (a missing one is a 400 unless create_missing_endpoints,
        which creates it disabled and without a key). Answers with what was created and what was reused."""
        if not request.user.has_perms(["workflows.add_workflow", "payloads.add_payload", "blocks.add_block"]):
            raise PermissionDenied("Importing needs the permissions to add workflows, payloads and blocks.")
        serializer = WorkflowImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        report = portability.workflow_import(
            document=serializer.validated_data["document"],
            create_missing_endpoints=serializer.validated_data["create_missing_endpoints"], user=request.user)
        return Response(report.as_dict(), status=status.HTTP_201_CREATED)

    def browsable_example(self) -> dict[str, Any]:
        """The first content of the browsable API's raw JSON form, naming payloads that exist."""
        payloads = list(Payload.objects.order_by("pk").values_list("pk", flat=True)[:2]) or [1]
        return {"name": "new-workflow", "description": "",
                "inputs": [{"name": "topic", "default": "tides", "description": "What the text is about."}],
                "steps": [{"payload": pk, "output_key": f"step_{n}"} for n, pk in enumerate(payloads, start=1)]}

    def perform_destroy(self, instance: Workflow) -> None:
        services.workflow_delete(workflow=instance)

    def _fresh(self, workflow: Workflow) -> Workflow:
        return self.get_queryset().get(pk=workflow.pk)
