"""The reprice page (/prices/reprice/): choose past steps, preview what their cost becomes, apply it as
a job and follow its progress. Previewing needs prices.view_price, applying prices.change_price."""
from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from runs.forms import RepriceForm
from runs.models import RepriceJob
from runs.reprice import reprice_job_create, reprice_job_totals, reprice_plan

RECENT_JOBS = 10


@login_required
@permission_required("prices.view_price", raise_exception=True)
@require_http_methods(["GET", "POST"])
def reprice(request: HttpRequest) -> HttpResponse:
    """`?model=..&since=..` fills the form in: the Prices page links here after a price is saved."""
    form = RepriceForm(request.POST or None, initial={name: request.GET[name] for name in ("since", "until", "model",
                                                                                          "workflow") if name in request.GET})
    context = {"form": form, "jobs": RepriceJob.objects.all()[:RECENT_JOBS],
               "can_apply": request.user.has_perm("prices.change_price")}
    if request.method == "POST":
        applying = "apply" in request.POST
        if applying and not context["can_apply"]:
            raise PermissionDenied("Applying a reprice needs the permission prices.change_price.")
        scope = form.scope()
        if scope is not None and applying:
            return redirect("reprice-job", pk=reprice_job_create(scope=scope, user=request.user).pk)
        if scope is not None:
            plan = context["plan"] = reprice_plan(scope=scope)
            context["rows"] = _rows(plan.totals_before, plan.totals_after)
    return render(request, "runs/reprice.html", context, status=400 if form.errors else 200)


def _rows(before: dict[str, Decimal], after: dict[str, Decimal]) -> list[dict[str, object]]:
    """One row per currency: amounts of two currencies are never added."""
    return [{"currency": currency, "before": before.get(currency, Decimal(0)), "after": after.get(currency, Decimal(0))}
            for currency in sorted(set(before) | set(after))]


def _job_context(job: RepriceJob) -> dict[str, object]:
    return {"job": job, "rows": _rows(*reprice_job_totals(job))}


@login_required
@permission_required("prices.view_price", raise_exception=True)
@require_GET
def reprice_job(request: HttpRequest, pk: int) -> HttpResponse:
    """A job's progress; htmx polls the progress part until the job is finished."""
    job = get_object_or_404(RepriceJob, pk=pk)
    template = "runs/_reprice_progress.html" if request.htmx else "runs/reprice_job.html"
    return render(request, template, _job_context(job))
