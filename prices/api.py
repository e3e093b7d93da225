"""The price book's API: /api/prices/ and /api/prices/resolve/. Writes go through prices.services."""
from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from prices import selectors, services
from prices.filters import PriceFilter
from prices.models import Price
from prices.serializers import PriceSerializer, ResolveQuerySerializer, ResolveSerializer


class PriceViewSet(viewsets.ModelViewSet):
    """The price book. An entry names a model exactly or by a regular expression (whole name), on one endpoint or
    on all; a tie with another entry is a 400 on `model`. Every edit adds one to `version`."""

    serializer_class = PriceSerializer
    filterset_class = PriceFilter
    search_fields = ["model", "note"]
    ordering_fields = ["model", "effective_from", "currency", "updated_at"]

    def get_queryset(self) -> QuerySet[Price]:
        return selectors.price_list()

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        price = services.price_save(Price(), fields=serializer.validated_data)
        return Response(self.get_serializer(price).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        price = self.get_object()
        serializer = self.get_serializer(price, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        price = services.price_save(price, fields=serializer.validated_data)
        return Response(self.get_serializer(price).data)

    def perform_destroy(self, instance: Price) -> None:
        services.price_delete(instance)

    @extend_schema(parameters=[ResolveQuerySerializer], responses=ResolveSerializer)
    @action(detail=False, methods=["get"], url_path="resolve", filter_backends=[], pagination_class=None)
    def resolve(self, request: Request, format: str | None = None) -> Response:
        """Which entry a step on `endpoint` with `model` pays at `at` (default now), and why: as the engine decides."""
        params = {name: value for name, value in request.query_params.items() if name != "format"}
        query = ResolveQuerySerializer(data=params)
        query.is_valid(raise_exception=True)
        endpoint = query.validated_data.get("endpoint")
        resolution = selectors.price_resolve(endpoint_id=endpoint.pk if endpoint else None,
                                             model=query.validated_data["model"], at=query.validated_data.get("at"))
        return Response(ResolveSerializer(resolution).data)
