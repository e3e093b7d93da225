"""/api/experiments/: start, list, read, cancel, retry and delete experiments; their results matrix a
page at a time, and its export streamed. Writes go through experiments.services; cancelling and
retrying change an experiment (experiments.change_experiment)."""
from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from core.money import from_nano
from core.pagination import Pagination
from core.permissions import ModelPermissions
from core.streaming import streaming_response
from evaluations.serializers import EvaluationSerializer
from experiments import selectors, services
from experiments.export import FORMATS, export_lines
from experiments.models import Experiment
from experiments.serializers import (
    ExperimentCreateSerializer,
    ExperimentDetailSerializer,
    ExperimentSerializer,
    ReevaluateSerializer,
    ResultPageSerializer,
)
from runs.throttling import RunStartThrottle


class ChangePermissions(ModelPermissions):
    """Cancelling and retrying change an experiment: they need experiments.change_experiment."""

    perms_map = {**ModelPermissions.perms_map, "POST": ["%(app_label)s.change_%(model_name)s"]}


SORT = OpenApiParameter("sort", OpenApiTypes.STR, OpenApiParameter.QUERY, required=False,
                        description="`latency:<variant id>`, `cost:<variant id>` or `tokens:<variant id>`: rows by "
                                    "that variant's figure, highest first; the dataset's order by default.")


def _sort(text: str | None, experiment: Experiment) -> tuple[str, int] | None:
    if not text:
        return None
    kind, _, variant = text.partition(":")
    if kind not in selectors.SORTS or not variant.isdigit() or not experiment.variants.filter(pk=int(variant)).exists():
        raise ValidationError({"sort": [f"“{text}” is not one of {', '.join(selectors.SORTS)} followed by “:” and "
                                        "a variant id of this experiment."]})
    return kind, int(variant)


ROW_FILTER = OpenApiParameter("filter", OpenApiTypes.STR, OpenApiParameter.QUERY, required=False,
                              enum=list(selectors.FILTERS),
                              description="`failures`: rows where a variant failed; `disagree`: rows whose "
                                          "variants' outputs differ.")
PAGE = OpenApiParameter("page", OpenApiTypes.INT, OpenApiParameter.QUERY, required=False, description="From 1.")
PAGE_SIZE = OpenApiParameter("page_size", OpenApiTypes.INT, OpenApiParameter.QUERY, required=False,
                             description=f"Rows per page, at most {Pagination.max_page_size}.")
EXPORT_FORMAT = OpenApiParameter("format", OpenApiTypes.STR, OpenApiParameter.QUERY, required=True,
                                 enum=list(FORMATS), description="csv or jsonl.")


def _whole_number(request: Request, name: str, default: int, high: int) -> int:
    given = request.query_params.get(name, "")
    if not given:
        return default
    if not (given.isdigit() and 1 <= int(given) <= high):
        raise ValidationError({name: [f"“{given}” is not a whole number from 1 to {high}."]})
    return int(given)


class ExperimentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                        mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Experiments: variants (releases) of a workflow over a dataset version, each case repeated, one run
    per cell. Created here (201), the cells start at once as capacity frees."""

    filterset_fields = ["status", "workflow"]
    search_fields = ["name"]
    ordering_fields = ["created_at", "name", "status"]

    def get_queryset(self) -> QuerySet[Experiment]:
        return selectors.experiment_list()

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        if self.action == "create":
            return ExperimentCreateSerializer
        return ExperimentSerializer if self.action == "list" else ExperimentDetailSerializer

    def get_throttles(self):  # type: ignore[no-untyped-def]
        # Cells are runs, which spend money at the LLM provider: the same per-user limit as starting a run.
        if self.action in ("create", "retry_errors"):
            return [RunStartThrottle()]
        return super().get_throttles()

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[Any, str]:
        # ?format= names the export's format, not a renderer: its errors are JSON, its body a stream.
        if self.action == "export":
            return JSONRenderer(), JSONRenderer.media_type
        return super().perform_content_negotiation(request, force)

    def _detail(self, pk: int, code: int = status.HTTP_200_OK) -> Response:
        return Response(ExperimentDetailSerializer(selectors.experiment_list().get(pk=pk)).data, status=code)

    @extend_schema(request=ExperimentCreateSerializer, responses={201: ExperimentDetailSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        experiment = services.experiment_create(user=request.user, **serializer.validated_data)
        return self._detail(experiment.pk, status.HTTP_201_CREATED)

    @extend_schema(responses={204: None, 400: OpenApiResponse(description="The experiment is still running.")})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.experiment_delete(experiment=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: ExperimentDetailSerializer})
    @action(detail=True, methods=["post"], permission_classes=[ChangePermissions])
    def cancel(self, request: Request, pk: str | None = None, format: str | None = None) -> Response:
        """Start no more cells, cancel the running ones; the experiment ends (cancelled) when they have."""
        experiment = services.experiment_cancel(experiment=self.get_object())
        return self._detail(experiment.pk, status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={
        202: ExperimentDetailSerializer,
        400: OpenApiResponse(description="The experiment is stopping.")})
    @action(detail=True, methods=["post"], url_path="retry-errors", permission_classes=[ChangePermissions])
    def retry_errors(self, request: Request, pk: str | None = None, format: str | None = None) -> Response:
        """Queue again the cells whose run failed (each gets a new run); `retried` says how many."""
        experiment = self.get_object()
        retried = services.experiment_retry_errors(experiment=experiment)
        response = self._detail(experiment.pk, status.HTTP_202_ACCEPTED)
        response.data["retried"] = retried
        return response

    @extend_schema(request=ReevaluateSerializer, responses={202: EvaluationSerializer})
    @action(detail=True, methods=["post"], permission_classes=[ChangePermissions])
    def reevaluate(self, request: Request, pk: str | None = None, format: str | None = None) -> Response:
        """Score the succeeded cells' stored outputs again as a new evaluation (which becomes the current
        one), with `assertions` or the experiment's own: nothing runs again but the judges."""
        experiment = self.get_object()
        serializer = ReevaluateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        evaluation = services.experiment_reevaluate(experiment=experiment, user=request.user,
                                                    assertions=serializer.validated_data["assertions"])
        return Response(EvaluationSerializer(evaluation).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=[ROW_FILTER, SORT, PAGE, PAGE_SIZE], responses=ResultPageSerializer)
    @action(detail=True, methods=["get"], filter_backends=[])
    def results(self, request: Request, pk: str | None = None, format: str | None = None) -> Response:
        """The matrix a page at a time, in the dataset's order: a row per case and repeat, a cell per variant."""
        experiment = self.get_object()
        row_filter = request.query_params.get("filter") or None
        if row_filter is not None and row_filter not in selectors.FILTERS:
            raise ValidationError({"filter": [f"“{row_filter}” is not one of: {', '.join(selectors.FILTERS)}."]})
        size = _whole_number(request, "page_size", Pagination.page_size or 50, Pagination.max_page_size)
        page = _whole_number(request, "page", 1, 10**9)
        rows, more = selectors.results_page(experiment, row_filter=row_filter, offset=(page - 1) * size, limit=size,
                                            sort=_sort(request.query_params.get("sort"), experiment))
        variants = list(experiment.variants.order_by("position").values_list("pk", "name"))
        url = request.build_absolute_uri()
        return Response({
            "next": replace_query_param(url, "page", page + 1) if more else None,
            "previous": None if page == 1 else (
                remove_query_param(url, "page") if page == 2 else replace_query_param(url, "page", page - 1)),
            "results": [_row(request, row, variants) for row in rows],
        })

    @extend_schema(parameters=[EXPORT_FORMAT], responses={
        (200, "text/csv"): OpenApiTypes.STR, (200, "application/x-ndjson"): OpenApiTypes.STR,
        400: OpenApiResponse(description="`format` is neither csv nor jsonl.")})
    @action(detail=True, methods=["get"], filter_backends=[])
    def export(self, request: Request, pk: str | None = None, format: str | None = None) -> StreamingHttpResponse:
        """The whole matrix as CSV (a column per input, then per variant and figure) or JSONL (an object
        per line), streamed."""
        experiment = self.get_object()
        fmt = request.query_params.get("format", "")
        if fmt not in FORMATS:
            raise ValidationError({"format": [f"“{fmt}” is not one of: {', '.join(FORMATS)}."]})
        return streaming_response(request._request, export_lines(experiment, fmt), content_type=FORMATS[fmt],
                                  filename=f"experiment-{experiment.pk}.{fmt}")


def _row(request: Request, row: selectors.ResultRow, variants: list[tuple[int, str]]) -> dict[str, Any]:
    return {"position": row.position, "row_id": row.row_id, "repeat": row.repeat, "inputs": row.inputs,
            "expected": row.expected,
            "cells": [_cell(request, pk, name, row.cells.get(pk)) for pk, name in variants]}


def _cell(request: Request, variant_id: int, name: str, cell: dict[str, Any] | None) -> dict[str, Any] | None:
    if cell is None:
        return None
    run_id = cell["run_id"]
    return {"variant_id": variant_id, "variant": name, "status": cell["status"], "output": cell["run__output"],
            "prompt_tokens": cell["prompt_tokens"], "completion_tokens": cell["completion_tokens"],
            "latency_ms": cell["latency_ms"],
            "cost": None if cell["cost_nano"] is None else str(from_nano(cell["cost_nano"])),
            "cost_currency": cell["cost_currency"], "cost_text": selectors.cell_cost_text(cell), "error": cell["error"],
            "run_id": run_id,
            "run_url": None if run_id is None else request.build_absolute_uri(reverse("api-run-detail", args=[run_id]))}
