"""A run's review page (/reviews/runs/<id>/): your verdict on any finished run, good or bad, with a
score and comment, and what others said. An experiment's queue is experiments.review_views."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from evaluations.models import Review
from evaluations.reviews import review_set
from runs.models import Run


def _score(text: str) -> object:
    try:
        return float(text) if text.strip() else None
    except ValueError:
        return text  # the service refuses it, naming the field


@login_required
@permission_required(("runs.view_run", "evaluations.add_review"), raise_exception=True)
@require_http_methods(["GET", "POST"])
def run_review(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run.objects.only("id", "workflow_name", "status", "inputs", "output"), pk=pk)
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        try:
            review_set(run=run, reviewer=request.user, verdict=request.POST.get("verdict", ""),
                       score=_score(request.POST.get("score", "")), comment=request.POST.get("comment", ""))
        except ValidationError as error:
            errors = error.message_dict
        else:
            messages.success(request, f"Saved your review of run {run.pk}.")
            return redirect("evaluations:run-review", pk=run.pk)
    mine = Review.objects.filter(run=run, reviewer=request.user).first()
    others = Review.objects.filter(run=run).exclude(reviewer=request.user).select_related("reviewer") \
        if request.user.has_perm("evaluations.view_review") else Review.objects.none()
    return render(request, "evaluations/run_review.html", {
        "run": run, "mine": mine, "others": others, "errors": errors,
        "form": request.POST if errors else {"verdict": mine.verdict if mine else "",
                                             "score": "" if not mine or mine.score is None else mine.score,
                                             "comment": mine.comment if mine else ""}},
        status=400 if errors else 200)
