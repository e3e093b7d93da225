"""/metrics: Prometheus' text format, for a bearer token or an allowed network (observability/access.py)."""
from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from core.client_address import client_address
from observability.access import ALLOWED, NO_TOKEN, metrics_access
from observability.metrics import exposition


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not settings.METRICS_ENABLED:
        raise Http404
    verdict = metrics_access(authorization=request.headers.get("Authorization", ""), address=client_address(request))
    if verdict != ALLOWED:
        response = HttpResponse("not allowed\n", status=verdict, content_type="text/plain")
        if verdict == NO_TOKEN:
            response["WWW-Authenticate"] = "Bearer"
        return response
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
