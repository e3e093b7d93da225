from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from blocks import services
from blocks.filters import BlockFilter
from blocks.models import Block
from blocks.selectors import BLOCK_HISTORY
from blocks.serializers import BlockSerializer
from core.versions_api import VersionsMixin


@extend_schema_view(destroy=extend_schema(responses={
    204: None, 409: OpenApiResponse(description="Not deleted: a payload uses the block; `used_by` names the payloads and workflow steps."),
}))
class BlockViewSet(VersionsMixin, viewsets.ModelViewSet):
    """Reusable prompt templates. A block used by a payload cannot be deleted (409); renaming is safe."""

    serializer_class = BlockSerializer
    version_restore_service = staticmethod(services.block_version_restore)
    version_layout = BLOCK_HISTORY
    filterset_class = BlockFilter
    search_fields = ["name", "description", "content"]
    ordering_fields = ["name", "created_at", "updated_at", "id"]

    def get_queryset(self) -> QuerySet[Block]:
        return Block.objects.prefetch_related("payload_blocks__payload__steps__workflow")

    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        block = services.block_create(message=fields.pop("version_message", ""), user=request.user, **fields)
        return Response(self.get_serializer(self._fresh(block)).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: object, **kwargs: object) -> Response:
        serializer = self.get_serializer(self.get_object(), data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        block = services.block_update(block=serializer.instance, message=fields.pop("version_message", ""),
                                      user=request.user, data=fields)
        return Response(self.get_serializer(self._fresh(block)).data)

    def browsable_example(self) -> dict[str, Any]:
        """The first content of the browsable API's raw JSON form."""
        return {"name": "greeting", "description": "Opens a conversation.", "content": "Say hello to {{ name }}."}

    def perform_destroy(self, instance: Block) -> None:
        services.block_delete(block=instance)

    def _fresh(self, block: Block) -> Block:
        return self.get_queryset().get(pk=block.pk)
