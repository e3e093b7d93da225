"""The dataset upload's request side: a file over DATASET_UPLOAD_MAX_BYTES is refused while it arrives
(by its Content-Length, else by counting), and every upload is spooled to a temporary file, never memory."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, TemporaryFileUploadHandler
from django.http import HttpRequest
from rest_framework import status
from rest_framework.exceptions import APIException


class UploadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"

    def __init__(self) -> None:
        limit = settings.DATASET_UPLOAD_MAX_BYTES
        super().__init__({"file": [f"The file is larger than {limit} bytes (DATASET_UPLOAD_MAX_BYTES)."]})


class SizeLimitUploadHandler(FileUploadHandler):
    """Counts the bytes of the request's files and stops the upload once they pass the limit."""

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.received = 0

    def handle_raw_input(self, input_data: Any, META: dict[str, Any], content_length: int, boundary: bytes,
                         encoding: str | None = None) -> None:
        if content_length and content_length > settings.DATASET_UPLOAD_MAX_BYTES + 64 * 1024:
            raise UploadTooLarge()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > settings.DATASET_UPLOAD_MAX_BYTES:
            raise UploadTooLarge()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def upload_handlers_set(request: HttpRequest) -> None:
    """Call before the request's files are read."""
    request.upload_handlers = [SizeLimitUploadHandler(request), TemporaryFileUploadHandler(request)]
