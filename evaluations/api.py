"""/api/evaluations/ (scorings, their scores, re-scoring errors) and /api/run-checks/ (a workflow's
assertions checked on every run). Writes go through evaluations.services."""
from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from core.permissions import ModelPermissions
from evaluations import selectors, services
from evaluations.models import Evaluation, RunChecks, ScoreOutcome
from evaluations.serializers import EvaluationSerializer, RunChecksSerializer, ScoreSerializer
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
