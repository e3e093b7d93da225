"""/api/evaluations/ (scorings, their scores, re-scoring errors), /api/run-checks/ (a workflow's
assertions checked on every run), /api/reviews/ and /api/preferences/ (people's verdicts). Writes go
through evaluations.services and evaluations.reviews."""
from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from core.permissions import ModelPermissions
from evaluations import reviews, selectors, services
from evaluations.models import Evaluation, Preference, Review, RunChecks, ScoreOutcome
from evaluations.serializers import (
    EvaluationSerializer,
    PreferenceSerializer,
    PreferenceWriteSerializer,
    ReviewSerializer,
    ReviewWriteSerializer,
    RunChecksSerializer,
    ScoreSerializer,
)
from workflows.models import Workflow

OUTCOME = OpenApiParameter("outcome", OpenApiTypes.STR, OpenApiParameter.QUERY, required=False,
                           enum=list(ScoreOutcome.values), description="Only scores with this outcome.")


class ChangePermissions(ModelPermissions):
    """Re-scoring changes an evaluation: POST needs evaluations.change_evaluation."""

    perms_map = {**ModelPermissions.perms_map, "POST": ["%(app_label)s.change_%(model_name)s"]}


class EvaluationViewSet(viewsets.ReadOnlyModelViewSet):
    """Evaluations: one scoring of stored outputs with fixed assertions (a new scoring is a new
    evaluation). `scope` is "experiment:<id>" or "workflow:<id>"."""

    serializer_class = EvaluationSerializer
    filterset_fields = ["scope", "status"]
    ordering_fields = ["created_at", "number"]

    def get_queryset(self) -> QuerySet[Evaluation]:
        return selectors.evaluation_list()

    def get_permissions(self) -> list[Any]:
        return [ChangePermissions()] if self.action == "rescore_errors" else super().get_permissions()

    @extend_schema(parameters=[OUTCOME], responses=ScoreSerializer(many=True))
    @action(detail=True, methods=["get"])
    def scores(self, request: Request, pk: str) -> Response:
        evaluation = self.get_object()
        scores = evaluation.scores.order_by("id")
        outcome = request.query_params.get("outcome")
        if outcome:
            if outcome not in ScoreOutcome.values:
                raise ValidationError({"outcome": [f"“{outcome}” is not one of {', '.join(ScoreOutcome.values)}."]})
            scores = scores.filter(outcome=outcome)
        page = self.paginate_queryset(scores)
        return self.get_paginated_response(ScoreSerializer(page, many=True).data)

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"], url_path="rescore-errors")
    def rescore_errors(self, request: Request, pk: str) -> Response:
        """Score again only the subjects that ended in error; nothing is run again but their judges."""
        count = services.evaluation_rescore_errors(evaluation=self.get_object())
        return Response({"rescored": count})


class RunChecksViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """A workflow's assertions checked on every run of it that succeeds (by workflow id). PUT sets them."""

    serializer_class = RunChecksSerializer
    lookup_field = "workflow_id"
    lookup_url_kwarg = "workflow"

    def get_queryset(self) -> QuerySet[RunChecks]:
        return RunChecks.objects.order_by("workflow_id")

    @extend_schema(request=RunChecksSerializer, responses=RunChecksSerializer)
    def update(self, request: Request, workflow: str) -> Response:
        target = get_object_or_404(Workflow, pk=workflow)
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        checks = services.run_checks_set(workflow=target, assertions=serializer.validated_data["assertions"],
                                         enabled=serializer.validated_data.get("enabled", True), user=request.user)
        return Response(self.get_serializer(checks).data, status=status.HTTP_200_OK)


RUN = OpenApiParameter("run", OpenApiTypes.INT, OpenApiParameter.QUERY, required=False,
                       description="Only those of this run.")
EXPERIMENT = OpenApiParameter("experiment", OpenApiTypes.INT, OpenApiParameter.QUERY, required=False,
                              description="Only those of this experiment's cells.")
MINE = OpenApiParameter("mine", OpenApiTypes.BOOL, OpenApiParameter.QUERY, required=False,
                        description="Only your own.")


def _id_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 18:
        raise ValidationError({name: ["Give an id (a whole number)."]})
    return int(value)


def _scoped(request: Request, queryset: QuerySet[Any], run_fields: tuple[str, ...]) -> QuerySet[Any]:
    """Filter by ?run=, ?experiment= (through the runs' experiment cells) and ?mine=true."""
    run, experiment = _id_param(request, "run"), _id_param(request, "experiment")
    if run is not None:
        wanted = Q()
        for name in run_fields:
            wanted |= Q(**{f"{name}_id": run})
        queryset = queryset.filter(wanted)
    if experiment is not None:
        queryset = queryset.filter(**{f"{run_fields[0]}__experiment_cell__experiment_id": experiment})
    if request.query_params.get("mine") in ("1", "true"):
        queryset = queryset.filter(reviewer=request.user)
    return queryset


class _UpsertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    write_serializer: type = ReviewWriteSerializer
    run_fields: tuple[str, ...] = ("run",)

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        queryset = super().filter_queryset(queryset)
        return _scoped(self.request, queryset, self.run_fields) if self.action == "list" else queryset

    def save(self, data: dict[str, Any]) -> tuple[Any, bool]:
        raise NotImplementedError

    def create(self, request: Request) -> Response:
        serializer = self.write_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        saved, created = self.save(serializer.validated_data)
        return Response(self.get_serializer(saved).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@extend_schema_view(list=extend_schema(parameters=[RUN, EXPERIMENT, MINE]))
class ReviewViewSet(_UpsertViewSet):
    """People's verdicts on runs: good or bad, an optional score (0 to 1) and comment. POST your review
    of a run; POSTing again replaces it (200 instead of 201)."""

    serializer_class = ReviewSerializer
    write_serializer = ReviewWriteSerializer
    run_fields = ("run",)
    filterset_fields = ["verdict"]
    ordering_fields = ["updated_at", "id"]

    def get_queryset(self) -> QuerySet[Review]:
        return Review.objects.select_related("reviewer")

    @extend_schema(request=ReviewWriteSerializer, responses={200: ReviewSerializer, 201: ReviewSerializer})
    def create(self, request: Request) -> Response:
        return super().create(request)

    def save(self, data: dict[str, Any]) -> tuple[Any, bool]:
        return reviews.review_set(run=data["run"], reviewer=self.request.user, verdict=data["verdict"],
                                  score=data.get("score"), comment=data.get("comment", ""))


@extend_schema_view(list=extend_schema(parameters=[RUN, EXPERIMENT, MINE]))
class PreferenceViewSet(_UpsertViewSet):
    """People's blinded choices between two runs of the same case: "a", "b" or "tie". POST your choice;
    POSTing again for the same two runs (in either order) replaces it."""

    serializer_class = PreferenceSerializer
    write_serializer = PreferenceWriteSerializer
    run_fields = ("run_a", "run_b")
    filterset_fields = ["choice"]
    ordering_fields = ["updated_at", "id"]

    def get_queryset(self) -> QuerySet[Preference]:
        return Preference.objects.select_related("reviewer")

    @extend_schema(request=PreferenceWriteSerializer, responses={200: PreferenceSerializer, 201: PreferenceSerializer})
    def create(self, request: Request) -> Response:
        return super().create(request)

    def save(self, data: dict[str, Any]) -> tuple[Any, bool]:
        return reviews.preference_set(run_a=data["run_a"], run_b=data["run_b"], reviewer=self.request.user,
                                      choice=data["choice"], comment=data.get("comment", ""))
