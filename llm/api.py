from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from llm import diagnostics, services
from llm.filters import EndpointFilter
from llm.models import Endpoint
from llm.serializers import ConnectivityReportSerializer, EndpointSerializer, EndpointTestRequestSerializer


@extend_schema_view(destroy=extend_schema(responses={
    204: None, 409: OpenApiResponse(description="Not deleted: a payload uses the endpoint; the message lists its users."),
}))
class EndpointViewSet(viewsets.ModelViewSet):
    """LLM endpoints. The API key is write-only: send `api_key`, read `has_api_key`. A used endpoint cannot be deleted (409)."""

    serializer_class = EndpointSerializer
    filterset_class = EndpointFilter
    search_fields = ["name", "base_url", "default_model"]
    ordering_fields = ["name", "base_url", "default_model", "enabled", "created_at", "updated_at"]
    ordering = ["name"]

    def get_queryset(self) -> QuerySet[Endpoint]:
        return Endpoint.objects.all()

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = services.endpoint_create(**serializer.validated_data)
        return Response(self.get_serializer(endpoint).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        endpoint = self.get_object()
        serializer = self.get_serializer(endpoint, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        endpoint = services.endpoint_update(endpoint=endpoint, **serializer.validated_data)
        return Response(self.get_serializer(endpoint).data)

    def perform_destroy(self, instance: Endpoint) -> None:
        services.endpoint_delete(endpoint=instance)

    @extend_schema(request=EndpointTestRequestSerializer, responses=ConnectivityReportSerializer)
    @action(detail=True, methods=["post"], url_path="test")
    def connectivity_test(self, request: Request, pk: str | None = None, format: str | None = None) -> Response:
        """List the endpoint's models and send one-token completions; one entry per check."""
        endpoint = self.get_object()
        body = EndpointTestRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        report = diagnostics.connectivity_test_sync(endpoint, model=body.validated_data.get("model") or None)
        return Response(report.as_dict())
