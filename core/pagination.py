"""The API's pagination (settings REST_FRAMEWORK["DEFAULT_PAGINATION_CLASS"])."""
from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    """Page numbers, with the page size a client may choose up to a cap (?page_size=)."""

    page_size_query_param = "page_size"
    max_page_size = 500
