"""The reprice API: `POST /api/reprice/` previews (dry_run) or starts a reprice job; `GET /api/reprice/{id}/` follows it.

Previewing needs prices.view_price, applying prices.change_price (the price book's permissions: a
reprice is a consequence of editing it). The work is runs.reprice's.
"""
from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.serializers import RejectUnknownFieldsMixin, StrictCharField
from runs.models import RepriceJob
from runs.reprice import RepriceTally, reprice_job_create, reprice_job_totals, reprice_plan, reprice_scope

VIEW_PERM, CHANGE_PERM = "prices.view_price", "prices.change_price"
DATE_FORMATS = ["iso-8601", "%Y-%m-%d"]


class RepriceRequestSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    since = serializers.DateTimeField(required=False, allow_null=True, input_formats=DATE_FORMATS,
                                      help_text="Steps created at or after this (a date or an ISO date-time).")
    until = serializers.DateTimeField(required=False, allow_null=True, input_formats=DATE_FORMATS,
                                      help_text="Steps created before this.")
    model = StrictCharField(required=False, allow_blank=True, default="", max_length=200,
                            help_text="A regular expression the whole model name matches; empty: every model.")
    workflow = StrictCharField(required=False, allow_blank=True, default="", max_length=100,
                               help_text="Only runs of the workflow of this name.")
    dry_run = serializers.BooleanField(required=False, default=False, help_text="Preview only: change nothing.")


class RepricePlanSerializer(serializers.Serializer):
    examined = serializers.IntegerField()
    changed = serializers.IntegerField()
    totals_before = serializers.DictField(child=serializers.DecimalField(max_digits=30, decimal_places=9))
    totals_after = serializers.DictField(child=serializers.DecimalField(max_digits=30, decimal_places=9))
    unpriced_before = serializers.IntegerField()
    unpriced_after = serializers.IntegerField()


class RepriceJobSerializer(serializers.ModelSerializer):
    totals_before = serializers.SerializerMethodField()
    totals_after = serializers.SerializerMethodField()

    class Meta:
        model = RepriceJob
        fields = ["id", "status", "since", "until", "model_pattern", "workflow_name", "batch_size", "examined", "changed",
                  "last_response_id", "max_response_id", "totals_before", "totals_after", "unpriced_before",
                  "unpriced_after", "error", "created_at", "started_at", "finished_at"]
        read_only_fields = fields

    def get_totals_before(self, job: RepriceJob) -> dict[str, str]:
        return {currency: str(amount) for currency, amount in reprice_job_totals(job)[0].items()}

    def get_totals_after(self, job: RepriceJob) -> dict[str, str]:
        return {currency: str(amount) for currency, amount in reprice_job_totals(job)[1].items()}


def plan_data(plan: RepriceTally) -> dict[str, Any]:
    return RepricePlanSerializer({"examined": plan.examined, "changed": plan.changed,
                                  "totals_before": plan.totals_before, "totals_after": plan.totals_after,
                                  "unpriced_before": plan.unpriced_before,
                                  "unpriced_after": plan.unpriced_after}).data


class RepricePermission(BasePermission):
    """Reading and previewing: prices.view_price; starting a job: prices.change_price too."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated and request.user.has_perm(VIEW_PERM)):
            return False
        if request.method == "POST" and not _is_dry_run(request.data):
            return request.user.has_perm(CHANGE_PERM)
        return True


def _is_dry_run(data: Any) -> bool:
    value = data.get("dry_run") if hasattr(data, "get") else None
    return value is True or str(value).lower() in ("true", "1")


class RepriceView(APIView):
    """Price past steps again by the price book as it stands: `dry_run` previews (200: steps examined and
    changing, totals before and after per currency, steps without a known cost); otherwise 202 with a
    job applied in batches in the background (follow it at `/api/reprice/{id}/`)."""

    permission_classes = [RepricePermission]

    @extend_schema(request=RepriceRequestSerializer, responses={
        200: RepricePlanSerializer, 202: RepriceJobSerializer,
        400: OpenApiResponse(description="A bad date (`since`, `until`) or regular expression (`model`).")})
    def post(self, request: Request) -> Response:
        body = RepriceRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = body.validated_data
        scope = reprice_scope(since=values.get("since"), until=values.get("until"), model=values["model"],
                              workflow=values["workflow"])
        if values["dry_run"]:
            return Response(plan_data(reprice_plan(scope=scope)))
        job = reprice_job_create(scope=scope, user=request.user)
        return Response(RepriceJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class RepriceJobView(APIView):
    """One reprice job: its status and progress, and the totals of the batches applied so far."""

    permission_classes = [RepricePermission]

    @extend_schema(responses={200: RepriceJobSerializer})
    def get(self, request: Request, pk: int) -> Response:
        return Response(RepriceJobSerializer(get_object_or_404(RepriceJob, pk=pk)).data)
