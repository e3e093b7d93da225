"""/healthz: what a load balancer asks before sending traffic (database, and workers when distributed)."""
import datetime

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers: answers 200 only when the database answers. Open to anonymous.

    In distributed mode it also counts the workers that beat in the last 30 s; none is a 503,
    since runs would queue forever.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    body: dict[str, object] = {"status": "ok", "runs_backend": settings.RUNS_BACKEND}
    if settings.RUNS_BACKEND == "procrastinate":
        from procrastinate.contrib.django.models import ProcrastinateWorker

        since = timezone.now() - datetime.timedelta(seconds=30)
        body["workers"] = ProcrastinateWorker.objects.filter(last_heartbeat__gte=since).count()
        if not body["workers"]:
            body["status"] = "no workers"
            return JsonResponse(body, status=503)
    return JsonResponse(body)
