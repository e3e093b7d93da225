"""/metrics: Prometheus' text format, for a bearer token or an allowed network (observability/access.py)."""
from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from prometheus_client import CONTENT_TYPE_LATEST

from core.client_address import client_address
from observability.access import ALLOWED, NO_TOKEN, metrics_access
from observability.metrics import exposition

REFUSAL = "Send Authorization: Bearer <METRICS_TOKEN>, or scrape from METRICS_ALLOWED_NETWORKS.\n"


def metrics(request: HttpRequest) -> HttpResponse:
    if not settings.METRICS_ENABLED:
        raise Http404
    # Who asks is checked before what: a stranger learns nothing, not even the allowed methods.
    verdict = metrics_access(authorization=request.headers.get("Authorization", ""), address=client_address(request))
    if verdict != ALLOWED:
        response = HttpResponse(REFUSAL, status=verdict, content_type="text/plain")
        if verdict == NO_TOKEN:
            response["WWW-Authenticate"] = "Bearer"
        return response
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
