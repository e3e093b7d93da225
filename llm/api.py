from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from core.permissions import ModelPermissions
from llm import diagnostics, selectors, services
from llm.filters import EndpointFilter
from llm.models import Endpoint
from llm.serializers import (
    CapabilityResetSerializer,
    CapabilitySerializer,
    CapabilitySetSerializer,
    ConnectivityReportSerializer,
    EndpointSerializer,
    EndpointTestRequestSerializer,
)


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


class EndpointCapabilityPermissions(ModelPermissions):
    """As the Endpoints page: reading needs llm.view_endpoint, setting or forgetting llm.change_endpoint."""

    perms_map = {
        **ModelPermissions.perms_map,
        **{method: ["%(app_label)s.change_%(model_name)s"] for method in ("POST", "PUT", "PATCH", "DELETE")},
    }


class _EndpointCapabilityView(GenericAPIView):
    queryset = Endpoint.objects.all()
    permission_classes = [EndpointCapabilityPermissions]
    filter_backends: list[Any] = []
    pagination_class = None
    serializer_class = CapabilitySerializer


class EndpointCapabilityListView(_EndpointCapabilityView):
    """What each model on the endpoint accepts, learned from the server or set by a person (`overridden`)."""

    @extend_schema(responses=CapabilitySerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        return Response(CapabilitySerializer(selectors.capability_rows(self.get_object()), many=True).data)


@extend_schema(parameters=[OpenApiParameter(
    "model", str, OpenApiParameter.PATH,
    description='The model name as sent to the server; it may contain "/" and ":" (meta-llama/Llama-3.1-8B:q4).')])
class EndpointCapabilityView(_EndpointCapabilityView):
    """One model's capabilities. PUT/PATCH set values (null hands a field back to learning); DELETE forgets the model."""

    def get(self, request: Request, pk: int, model: str) -> Response:
        row = selectors.capability_row(self.get_object(), model)
        if row is None:
            raise NotFound(f"Nothing is learned or set about {model!r} on this endpoint.")
        return Response(CapabilitySerializer(row).data)

    @extend_schema(request=CapabilitySetSerializer, responses=CapabilitySerializer)
    def put(self, request: Request, pk: int, model: str) -> Response:
        return self._set(request, model, replace=True)

    @extend_schema(request=CapabilitySetSerializer, responses=CapabilitySerializer)
    def patch(self, request: Request, pk: int, model: str) -> Response:
        return self._set(request, model, replace=False)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int, model: str) -> Response:
        if not services.capability_reset(endpoint=self.get_object(), model=model):
            raise NotFound(f"Nothing is learned or set about {model!r} on this endpoint.")
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _set(self, request: Request, model: str, *, replace: bool) -> Response:
        endpoint = self.get_object()
        body = CapabilitySetSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = dict(body.validated_data)
        if replace:  # what a person had set and this PUT leaves out goes back to learning
            row = selectors.capability_row(endpoint, model)
            values = {**dict.fromkeys(row.overridden if row else []), **values}
        return Response(CapabilitySerializer(services.capability_set(endpoint=endpoint, model=model, values=values)).data)


@extend_schema_view(get=extend_schema(exclude=True), put=extend_schema(exclude=True),
                    patch=extend_schema(exclude=True), delete=extend_schema(exclude=True))
class EndpointCapabilityResetView(EndpointCapabilityView):
    """POST forgets what was learned and set about every model of the endpoint. (The other methods
    reach a model that is named "reset", which this path would otherwise hide.)"""

    @extend_schema(request=None, responses=CapabilityResetSerializer,
                   parameters=[OpenApiParameter("model", str, OpenApiParameter.PATH, exclude=True)])
    def post(self, request: Request, pk: int, model: str = "reset") -> Response:
        return Response({"deleted": services.capability_reset(endpoint=self.get_object())})
