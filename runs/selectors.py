import datetime
from typing import Any

from django.db.models import Count, Prefetch, QuerySet
from django.utils import timezone

from runs.models import Response, Run, RunStatus


def run_list() -> QuerySet[Run]:
    return Run.objects.defer("snapshot").all()


def run_detail_queryset() -> QuerySet[Run]:
    return Run.objects.prefetch_related(Prefetch("responses", queryset=Response.objects.order_by("index")))


def run_detail(run_id: int) -> Run:
    return run_detail_queryset().get(pk=run_id)


def run_metrics() -> dict[str, Any]:
    """What operators watch: queued, running, failed in the last hour, the oldest queued run."""
    now = timezone.now()
    counts = dict(Run.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.CANCELLING])
                  .values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    oldest = Run.objects.filter(status=RunStatus.QUEUED).order_by("created_at").values_list("created_at", flat=True).first()
    return {
        "queued": counts.get(RunStatus.QUEUED, 0),
        "running": counts.get(RunStatus.RUNNING, 0) + counts.get(RunStatus.CANCELLING, 0),
        "failed_last_hour": Run.objects.filter(status=RunStatus.FAILED,
                                               finished_at__gte=now - datetime.timedelta(hours=1)).count(),
        "oldest_queued_age_seconds": round((now - oldest).total_seconds()) if oldest else None,
    }
