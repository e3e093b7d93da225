"""The API's pagination (settings REST_FRAMEWORK["DEFAULT_PAGINATION_CLASS"])."""
from rest_framework import pagination
from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    """Page numbers, with the page size a client may choose up to a cap (?page_size=)."""

    page_size_query_param = "page_size"
    max_page_size = 500


class CursorPagination(pagination.CursorPagination):
    """Keyset pages for lists that grow without bound (runs): `next`/`previous` links carry the
    position, so a page costs the same at any depth and nothing is counted. The order is the
    view's `ordering` (or ?ordering=, among the view's ordering_fields), newest first by default."""

    ordering = ("-created_at", "-id")
    page_size_query_param = "page_size"
    max_page_size = 500
