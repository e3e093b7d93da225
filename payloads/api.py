from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from blocks.models import Block
from core.permissions import ModelPermissions
from core.versions_api import VersionsMixin
from llm import tokens
from llm.models import Endpoint
from payloads import services
from payloads.filters import PayloadFilter
from payloads.models import Payload
from payloads.selectors import PAYLOAD_HISTORY
from payloads.serializers import (
    PayloadPreviewErrorSerializer,
    PayloadPreviewInputSerializer,
    PayloadPreviewSerializer,
    PayloadSerializer,
)


class ViewPermissionToPreview(ModelPermissions):
    """A preview changes nothing, so viewing the payload is enough, although it is a POST."""

    perms_map = {**ModelPermissions.perms_map, "POST": ["%(app_label)s.view_%(model_name)s"]}


@extend_schema_view(destroy=extend_schema(responses={
    204: None, 409: OpenApiResponse(description="Not deleted: a workflow uses the payload; `used_by` names the workflow steps."),
}))
class PayloadViewSet(VersionsMixin, viewsets.ModelViewSet):
    """Blocks plus LLM settings for one chat completion. A payload used by a workflow cannot be deleted (409)."""

    serializer_class = PayloadSerializer
    version_restore_service = staticmethod(services.payload_version_restore)
    version_layout = PAYLOAD_HISTORY
    filterset_class = PayloadFilter
    search_fields = ["name", "description", "model"]
    ordering_fields = ["name", "created_at", "updated_at", "id", "model"]

    def get_queryset(self) -> QuerySet[Payload]:
        return Payload.objects.select_related("endpoint").prefetch_related("payload_blocks__block", "steps__workflow")

    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        payload = services.payload_create(blocks=fields.pop("payload_blocks", []), user=request.user,
                                          message=fields.pop("version_message", ""), **fields)
        return Response(self.get_serializer(self._fresh(payload)).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: object, **kwargs: object) -> Response:
        serializer = self.get_serializer(self.get_object(), data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        payload = services.payload_update(payload=serializer.instance, blocks=fields.pop("payload_blocks", None),
                                          user=request.user, message=fields.pop("version_message", ""), data=fields)
        return Response(self.get_serializer(self._fresh(payload)).data)

    @extend_schema(
        request=PayloadPreviewInputSerializer,
        responses={200: PayloadPreviewSerializer,
                   400: OpenApiResponse(PayloadPreviewErrorSerializer, description="Missing variables or a render error.")},
    )
    @action(detail=True, methods=["post"], permission_classes=[ViewPermissionToPreview])
    def preview(self, request: Request, pk: str | None = None, format: str | None = None) -> Response:
        """The chat messages this payload sends for the given variables, and their token count."""
        payload = self.get_object()
        serializer = PayloadPreviewInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            messages = services.payload_preview(payload=payload, variables=serializer.validated_data["variables"])
        except services.RenderProblem as exc:
            return Response({"variables": [str(exc)], "missing": exc.missing}, status=status.HTTP_400_BAD_REQUEST)
        model = payload.effective_model
        return Response({"messages": messages, "token_count": tokens.count_messages(messages, model), "model": model})

    def browsable_example(self) -> dict[str, Any]:
        """The first content of the browsable API's raw JSON form, naming an endpoint and blocks that exist."""
        endpoint = Endpoint.objects.order_by("pk").values_list("pk", flat=True).first()
        blocks = list(Block.objects.order_by("pk").values_list("pk", flat=True)[:2]) or [1]
        roles = ["system", "user"] if len(blocks) == 2 else ["user"]
        return {"name": "new-payload", "description": "", "endpoint": endpoint or 1, "model": "", "temperature": 0.7,
                "max_tokens": 500, "blocks": [{"block": pk, "role": role} for pk, role in zip(blocks, roles, strict=True)]}

    def perform_destroy(self, instance: Payload) -> None:
        services.payload_delete(payload=instance)

    def _fresh(self, payload: Payload) -> Payload:
        return self.get_queryset().get(pk=payload.pk)
