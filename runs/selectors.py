from django.db.models import Prefetch, QuerySet

from runs.models import Response, Run


def run_list() -> QuerySet[Run]:
    return Run.objects.defer("snapshot").all()


def run_detail_queryset() -> QuerySet[Run]:
    return Run.objects.prefetch_related(Prefetch("responses", queryset=Response.objects.order_by("index")))


def run_detail(run_id: int) -> Run:
    return run_detail_queryset().get(pk=run_id)
