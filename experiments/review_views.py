"""The review pages of an experiment: the queue of unreviewed cells (good or bad, a score, a comment,
with keyboard shortcuts), the blinded A/B queue between two variants, and the summary of what people
said. Writes go through evaluations.reviews; reads through experiments.reviews."""
from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods

from evaluations.reviews import preference_set, review_set
from experiments import reviews, selectors
from experiments.models import Cell, Experiment, Variant

SHORTCUTS = (("g", "Good"), ("b", "Bad"), ("s", "Skip to the next"), ("?", "Show or hide this help"))
AB_SHORTCUTS = (("1 or ←", "A was better"), ("2 or →", "B was better"), ("t", "Tie"), ("s", "Skip to the next"),
                ("?", "Show or hide this help"))


def _experiment(pk: int) -> Experiment:
    return get_object_or_404(selectors.experiment_list(), pk=pk)


def _id(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 19 else None


def _variant(experiment: Experiment, asked: str | None) -> Variant | None:
    pk = _id(asked)
    return experiment.variants.filter(pk=pk).first() if pk else None


def _cell(experiment: Experiment, asked: str | None) -> Cell | None:
    pk = _id(asked)
    return Cell.objects.filter(experiment=experiment, pk=pk).select_related("variant").first() if pk else None


def _queue_url(experiment: Experiment, **params: Any) -> str:
    query = urlencode({key: value for key, value in params.items() if value})
    return reverse("experiments:review", args=[experiment.pk]) + (f"?{query}" if query else "")


def _save_review(request: HttpRequest, experiment: Experiment, cell: Cell | None) -> dict[str, list[str]]:
    if cell is None or cell.run_id is None:
        return {"cell": ["Pick a cell of this experiment that has a run."]}
    try:
        review_set(run=cell.run_id, reviewer=request.user, verdict=request.POST.get("verdict", ""),
                   score=_number(request.POST.get("score", "")), comment=request.POST.get("comment", ""))
    except ValidationError as error:
        return error.message_dict
    return {}


def _number(text: str) -> Any:
    """The score box's text as a number when it is one (else as given, for the service to refuse)."""
    try:
        return float(text) if text.strip() else None
    except ValueError:
        return text


@login_required
@permission_required(("experiments.view_experiment", "evaluations.add_review"), raise_exception=True)
@require_http_methods(["GET", "POST"])
def experiment_review(request: HttpRequest, pk: int) -> HttpResponse:
    """The next succeeded cell this person has not reviewed, in the dataset's order; a verdict saves
    and moves on, "skip" moves on without one."""
    experiment = _experiment(pk)
    source = request.POST if request.method == "POST" else request.GET
    variant = _variant(experiment, source.get("variant"))
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        cell = _cell(experiment, request.POST.get("cell"))
        errors = _save_review(request, experiment, cell)
        if not errors:
            assert cell is not None
            messages.success(request, f"Saved: case {cell.position + 1} is {request.POST['verdict']}.")
            return redirect(_queue_url(experiment, variant=variant.pk if variant else None, after=cell.pk))
    after = _cell(experiment, source.get("after")) if not errors else None
    cell = _cell(experiment, source.get("cell")) if errors else \
        reviews.review_queue_next(experiment, request.user, variant=variant, after=after)
    return render(request, "evaluations/review_queue.html", {
        "experiment": experiment, "variant": variant, "variants": experiment.variants.order_by("position"),
        "cell": cell, "after": after, "errors": errors, "form": request.POST if errors else {},
        "progress": reviews.review_progress(experiment, request.user, variant=variant),
        "skip_url": _queue_url(experiment, variant=variant.pk if variant else None, after=cell.pk) if cell else "",
        "restart_url": _queue_url(experiment, variant=variant.pk if variant else None),
        "shortcuts": SHORTCUTS}, status=400 if errors else 200)


def _ab_variants(experiment: Experiment, source: Any) -> tuple[Variant | None, Variant | None]:
    variants = list(experiment.variants.order_by("position"))
    first = _variant(experiment, source.get("a")) or (variants[0] if variants else None)
    second = _variant(experiment, source.get("b")) or next((v for v in variants if v != first), None)
    return (first, second) if first and second and first != second else (first, None)


def _save_choice(request: HttpRequest, pair: reviews.Pair | None) -> dict[str, list[str]]:
    if pair is None:
        return {"pair": ["That case is not one both variants answered."]}
    try:
        preference_set(run_a=pair.shown_a.run_id, run_b=pair.shown_b.run_id, reviewer=request.user,
                       choice=request.POST.get("choice", ""), comment=request.POST.get("comment", ""))
    except ValidationError as error:
        return error.message_dict
    return {}


def _ab_url(experiment: Experiment, first: Variant, second: Variant, **params: Any) -> str:
    query = urlencode({"a": first.pk, "b": second.pk, **{k: v for k, v in params.items() if v}})
    return reverse("experiments:review-ab", args=[experiment.pk]) + f"?{query}"


@login_required
@permission_required(("experiments.view_experiment", "evaluations.add_preference"), raise_exception=True)
@require_http_methods(["GET", "POST"])
def experiment_review_ab(request: HttpRequest, pk: int) -> HttpResponse:
    """Two variants' answers to one case as "A" and "B", sides shuffled per case; which variant was
    which is shown only once the choice is saved."""
    experiment = _experiment(pk)
    source = request.POST if request.method == "POST" else request.GET
    first, second = _ab_variants(experiment, source)
    context: dict[str, Any] = {"experiment": experiment, "variants": experiment.variants.order_by("position"),
                               "first": first, "second": second, "shortcuts": AB_SHORTCUTS, "errors": {}}
    if second is None:
        return render(request, "evaluations/review_ab.html", context)
    assert first is not None
    pairs = reviews.ab_pairs(experiment, first, second, request.user)
    by_key = {pair.key: pair for pair in pairs}
    if request.method == "POST":
        key = request.POST.get("pair", "")
        context["errors"] = _save_choice(request, by_key.get(key))
        if not context["errors"]:
            return redirect(_ab_url(experiment, first, second, after=key, revealed=key))
    after = source.get("after") if request.method == "GET" else None
    pair = by_key.get(request.POST.get("pair", "")) if context["errors"] else reviews.ab_queue_next(pairs, after=after)
    revealed = by_key.get(request.GET.get("revealed", ""))
    context.update({
        "pair": pair, "revealed": revealed if revealed and revealed.choice else None, "after": after,
        "done": sum(1 for p in pairs if p.choice), "total": len(pairs),
        "skip_url": _ab_url(experiment, first, second, after=pair.key) if pair else "",
        "restart_url": _ab_url(experiment, first, second)})
    return render(request, "evaluations/review_ab.html", context, status=400 if context["errors"] else 200)


@login_required
@permission_required(("experiments.view_experiment", "evaluations.view_review"), raise_exception=True)
@require_GET
def experiment_reviews(request: HttpRequest, pk: int) -> HttpResponse:
    """What people said: good and bad per variant, blinded choices per pair, agreement with the judges."""
    experiment = _experiment(pk)
    return render(request, "evaluations/review_summary.html", {
        "experiment": experiment, "summary": reviews.review_summary(experiment),
        "recent": reviews.recent_reviews(experiment)})
