"""/api/promptfoo/import/ and /api/promptfoo/export/: promptfoo interchange (experiments/promptfoo.py).

Importing makes workflows and datasets: it needs workflows.add_workflow and datasets.add_dataset, and
experiments.add_experiment when it starts an experiment. Exporting an experiment needs
experiments.view_experiment; a workflow's releases with a dataset version, the view permissions of both.
"""
from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.serializers import RejectUnknownFieldsMixin, StrictCharField
from datasets.models import DatasetVersion
from experiments.models import Experiment
from experiments.promptfoo import promptfoo_export, promptfoo_import
from experiments.promptfoo_yaml import MAX_BYTES
from workflows.models import Workflow

IMPORT_PERMS = ("workflows.add_workflow", "datasets.add_dataset")
EXPERIMENT_PERM = "experiments.add_experiment"
EXPORT_PERM = "experiments.view_experiment"
WORKFLOW_EXPORT_PERMS = ("workflows.view_workflow", "datasets.view_dataset")


class PromptfooImportSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    file = serializers.FileField(required=False, help_text="The promptfooconfig.yaml (multipart).")
    yaml = StrictCharField(required=False, trim_whitespace=False, max_length=MAX_BYTES,
                           help_text="Or the config's text (JSON body).")
    endpoint_map = serializers.JSONField(required=False, default=dict,
                                         help_text='{"provider id or label": endpoint id or name}.')
    default_endpoint = serializers.CharField(required=False, allow_blank=True, default="",
                                             help_text="The endpoint (id or name) of every provider not mapped.")
    name_prefix = StrictCharField(required=False, allow_blank=True, default="", max_length=90,
                                  help_text="The name of the workflow, payload and dataset; default: the description.")
    create_experiment = serializers.BooleanField(required=False, default=False)

    def validate_endpoint_map(self, value: Any) -> dict[str, Any]:
        if isinstance(value, str):  # a multipart field holds the mapping as JSON text
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError:
                raise serializers.ValidationError("Not JSON: give {\"provider\": \"endpoint\"}.") from None
        if not isinstance(value, dict) or not all(isinstance(v, int | str) for v in value.values()):
            raise serializers.ValidationError('A mapping {"provider id or label": endpoint id or name}.')
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("file" in attrs) == ("yaml" in attrs):
            raise serializers.ValidationError({"file": ["Give the config as a file or as `yaml` text (one of them)."]})
        upload = attrs.get("file")
        if upload is not None and upload.size > MAX_BYTES:
            raise serializers.ValidationError({"file": [f"The file is larger than {MAX_BYTES} bytes."]})
        return attrs


def _wants_experiment(data: Any) -> bool:
    value = data.get("create_experiment") if hasattr(data, "get") else None
    return value is True or str(value).lower() in ("true", "1", "on")


class ImportPermission(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.has_perms(IMPORT_PERMS)):
            return False
        return not _wants_experiment(request.data) or user.has_perm(EXPERIMENT_PERM)


class ExportPermission(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if "experiment" in request.query_params or "workflow" not in request.query_params:
            return user.has_perm(EXPORT_PERM)
        return user.has_perms(WORKFLOW_EXPORT_PERMS)


class PromptfooImportView(APIView):
    """Import a promptfooconfig.yaml: its prompts become blocks, each prompt x provider a release of one
    workflow (providers run on the endpoints `endpoint_map` or `default_endpoint` name), its tests a
    dataset version, defaultTest.assert the experiment's assertions; `create_experiment` starts it.
    201 with the report, which lists every assertion or setting left out or ignored with its line; 400
    naming the field and line, with nothing created."""

    permission_classes = [ImportPermission]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(request=PromptfooImportSerializer, responses={
        201: OpenApiResponse(description="The report: workflow, variants, dataset version, assertions, experiment, "
                                         "suggested_experiment, unsupported."),
        400: OpenApiResponse(description="Bad YAML (with its line), an unmapped provider, a bad assertion.")})
    def post(self, request: Request) -> Response:
        body = PromptfooImportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = body.validated_data
        text = values["file"].read() if "file" in values else values["yaml"]
        report = promptfoo_import(text, endpoint_map=values["endpoint_map"],
                                  default_endpoint=values["default_endpoint"] or None,
                                  name_prefix=values["name_prefix"], create_experiment=values["create_experiment"],
                                  user=request.user)
        return Response(report.as_json(), status=status.HTTP_201_CREATED)


def _id(request: Request, name: str) -> int:
    try:
        return int(request.query_params[name])
    except (KeyError, ValueError):
        raise ValidationError({name: ["Give an id."]}) from None


class PromptfooExportView(APIView):
    """An experiment (`?experiment=ID`), or a workflow's releases with a dataset version (`?workflow=ID&
    dataset_version=ID`), as a promptfooconfig.yaml. Endpoint keys are never written."""

    permission_classes = [ExportPermission]

    @extend_schema(parameters=[OpenApiParameter("experiment", OpenApiTypes.INT, required=False),
                               OpenApiParameter("workflow", OpenApiTypes.INT, required=False),
                               OpenApiParameter("dataset_version", OpenApiTypes.INT, required=False)],
                   responses={(200, "application/yaml"): OpenApiTypes.STR})
    def get(self, request: Request) -> HttpResponse:
        if "workflow" in request.query_params and "experiment" not in request.query_params:
            text = promptfoo_export(workflow=get_object_or_404(Workflow, pk=_id(request, "workflow")),
                                    dataset_version=get_object_or_404(DatasetVersion, pk=_id(request, "dataset_version")))
            name = "promptfooconfig.yaml"
        else:
            experiment = get_object_or_404(Experiment.objects.select_related("workflow", "dataset_version"),
                                           pk=_id(request, "experiment"))
            text, name = promptfoo_export(experiment=experiment), f"promptfooconfig-experiment-{experiment.pk}.yaml"
        response = HttpResponse(text, content_type="application/yaml; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
