from typing import Any

from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response as HttpResponse

from core.converters import MAX_ID
from core.pagination import CursorPagination
from runs import selectors, services
from runs.filters import RunFilter, RunOrderingFilter
from runs.models import Run
from runs.serializers import RunListSerializer, RunRerunSerializer, RunSerializer, RunStartSerializer
from runs.throttling import RunStartThrottle
from workflows.models import Workflow


class RunViewSet(viewsets.ReadOnlyModelViewSet):
    """Runs of workflows, newest first, with their responses. Start one at /api/workflows/{id}/runs/."""

    filterset_class = RunFilter
    # Each ordering has an index ending in it (runs.models.Run.Meta); ?search= is the filterset's full-text search.
    ordering_fields = ["created_at", "finished_at", "latency_ms"]
    filter_backends = [DjangoFilterBackend, RunOrderingFilter]
    pagination_class = CursorPagination

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.run_list_with_release() if self.action == "list" else selectors.run_detail_queryset()

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        return RunListSerializer if self.action == "list" else RunSerializer

    def get_throttles(self):  # type: ignore[no-untyped-def]
        # A re-run starts a run: the same per-user limit as starting one.
        if self.action == "rerun":
            return [RunStartThrottle()]
        return super().get_throttles()

    @extend_schema(request=None, responses=RunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None, format: str | None = None) -> HttpResponse:
        run = self.get_object()
        if not request.user.has_perm("runs.change_run"):
            raise PermissionDenied("Cancelling a run needs the permission to change runs.")
        run = services.run_cancel(run=run)
        return HttpResponse(RunSerializer(selectors.run_detail(run.pk)).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=RunRerunSerializer, responses={201: RunSerializer})
    @action(detail=True, methods=["post"])
    def rerun(self, request: Request, pk: str | None = None, format: str | None = None) -> HttpResponse:
        serializer = RunRerunSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = services.run_replay(source=self.get_object(), user=request.user,
                                  from_step=serializer.validated_data["from_step"],
                                  inputs=serializer.validated_data.get("inputs"))
        return HttpResponse(RunSerializer(selectors.run_detail(run.pk)).data, status=status.HTTP_201_CREATED)


    @extend_schema(request=None, parameters=[OpenApiParameter(
        "against", OpenApiTypes.STR, OpenApiParameter.QUERY, required=False,
        description="`current` (default): the workflow's tree as it stands; or a run's id.")],
        responses={200: OpenApiTypes.OBJECT, 400: OpenApiResponse(description="`against` is neither `current` nor an id."),
                   404: OpenApiResponse(description="No such run, or the workflow was deleted (named).")})
    @action(detail=True, methods=["get"])
    def changes(self, request: Request, pk: str | None = None, format: str | None = None) -> HttpResponse:
        """What changed since this run: its tree (old) against the workflow's current tree or another run's
        (new); steps added, removed, moved or changed, settings field by field, block texts word by word."""
        run = self.get_object()
        against = (request.query_params.get("against") or "current").strip()
        other = None
        if against != "current":
            if not against.isdigit() or int(against) > MAX_ID:
                raise ValidationError({"against": [f"“{against}” is neither “current” nor a run id."]})
            other = Run.objects.filter(pk=int(against)).first()
            if other is None:
                raise NotFound(f"No run {against} to compare with.")
        try:
            return HttpResponse(selectors.run_changes(run, against=other))
        except Workflow.DoesNotExist as error:
            raise NotFound(str(error)) from None


class WorkflowRunsView(generics.ListCreateAPIView):
    """The workflow's runs, newest first (GET), or start a run of it with the given inputs (POST)."""

    filterset_class = RunFilter
    ordering_fields = RunViewSet.ordering_fields
    filter_backends = RunViewSet.filter_backends
    pagination_class = CursorPagination

    def get_queryset(self):  # type: ignore[no-untyped-def]
        # By id, without a 404: the permission check reads the queryset before the view runs.
        # The schema generator calls this without URL arguments.
        return selectors.run_list_with_release().filter(workflow_id=self.kwargs.get("pk"))

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        return RunStartSerializer if self.request.method == "POST" else RunListSerializer

    def get_throttles(self):  # type: ignore[no-untyped-def]
        # Runs spend money at the LLM provider: RUNS_THROTTLE_RATE per user for starting one.
        if self.request.method == "POST":
            return [RunStartThrottle()]
        return super().get_throttles()

    def browsable_example(self) -> dict[str, Any]:
        """The raw JSON form's first content: every declared input, with its default."""
        workflow = Workflow.objects.filter(pk=self.kwargs["pk"]).first()
        inputs = workflow.inputs if workflow else []
        return {"inputs": {item["name"]: item.get("default") or "" for item in inputs}}

    def get(self, request: Request, pk: int) -> HttpResponse:
        self._workflow()  # an unknown workflow is a 404, not an empty list
        return self.list(request)

    @extend_schema(request=RunStartSerializer, responses={201: RunSerializer})
    def post(self, request: Request, pk: int) -> HttpResponse:
        workflow = self._workflow()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run = services.run_start(workflow=workflow, inputs=data["inputs"], user=request.user, label=data["label"],
                                 budget=data.get("budget", services.WORKFLOW_DEFAULT),
                                 budget_currency=data["budget_currency"], cache_mode=data["cache_mode"])
        return HttpResponse(RunSerializer(selectors.run_detail(run.pk)).data, status=status.HTTP_201_CREATED)

    def _workflow(self) -> Workflow:
        return get_object_or_404(Workflow, pk=self.kwargs["pk"])
