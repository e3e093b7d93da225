"""The Experiments pages: the list, "New experiment", one experiment (live progress, per-variant
aggregates, the results matrix), its export, cancel and retry, and two experiments compared. Every
write goes through experiments.services, every read through experiments.selectors."""
from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.streaming import streaming_response
from datasets.models import Dataset
from experiments import events, selectors, services
from experiments.export import FORMATS, export_lines
from experiments.forms import ExperimentForm, variant_spec
from experiments.models import Experiment, Variant
from workflows.models import Workflow

EXPERIMENTS_PER_PAGE = 50
ROWS_PER_PAGE = 50
COMPARE_CHOICES = 100
FILTER_NAMES = {"": "All rows", "failures": "Only failures", "disagree": "Variants disagree"}


def _page_number(request: HttpRequest) -> int:
    asked = request.GET.get("page", "")
    return int(asked) if asked.isdigit() and 0 < len(asked) < 7 and int(asked) > 0 else 1


@login_required
@permission_required("experiments.view_experiment", raise_exception=True)
@require_GET
def experiment_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.experiment_list(), EXPERIMENTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "experiments/experiment_list.html", {"page": page})


def _picked(model: Any, value: str | None) -> Any:
    return model.objects.filter(pk=int(value)).first() if value and value.isdigit() and len(value) < 19 else None


def _form(request: HttpRequest) -> ExperimentForm:
    source = request.POST if request.method == "POST" else request.GET
    picked = {"workflow": _picked(Workflow, source.get("workflow")), "dataset": _picked(Dataset, source.get("dataset"))}
    if request.method == "POST":
        return ExperimentForm(request.POST, **picked)
    # A GET with choices (the htmx refresh, or "Show choices" without JS) keeps what was filled in.
    initial = {key: source.getlist(key) if key == "variants" else source.get(key) for key in source}
    return ExperimentForm(initial=initial, **picked)


def _created(form: ExperimentForm, user: Any) -> Experiment | None:
    version = form.dataset_version()
    if version is None:
        form.add_error("version", "Pick a version of the dataset.")
        return None
    data = form.cleaned_data
    try:
        return services.experiment_create(
            name=data["name"], workflow=data["workflow"], dataset_version=version,
            variants=[variant_spec(choice) for choice in data["variants"]], mapping=form.mapping(),
            repeats=data["repeats"], concurrency=data["concurrency"], budget=data["budget"] or None,
            budget_currency=data["budget_currency"] or None, user=user)
    except ValidationError as error:
        form.service_errors(error)
        return None


@login_required
@permission_required("experiments.add_experiment", raise_exception=True)
@require_http_methods(["GET", "POST"])
def experiment_new(request: HttpRequest) -> HttpResponse:
    form = _form(request)
    if request.method == "POST" and form.is_valid():
        experiment = _created(form, request.user)
        if experiment is not None:
            messages.success(request, f"Experiment “{experiment.name}” started: {experiment.cell_count} cells.")
            return redirect("experiments:detail", pk=experiment.pk)
    return render(request, "experiments/experiment_new.html", {"form": form},
                  status=400 if form.errors else 200)


def _results(request: HttpRequest, experiment: Experiment) -> dict[str, Any]:
    row_filter = request.GET.get("filter", "")
    row_filter = row_filter if row_filter in selectors.FILTERS else ""
    number = _page_number(request)
    rows, more = selectors.results_page(experiment, row_filter=row_filter or None,
                                        offset=(number - 1) * ROWS_PER_PAGE, limit=ROWS_PER_PAGE)
    variants = list(experiment.variants.order_by("position"))
    return {"experiment": experiment, "variants": variants, "filter": row_filter, "filters": FILTER_NAMES,
            "rows": [{"row": row, "cells": [row.cells.get(v.pk) for v in variants]} for row in rows],
            "page_number": number, "more": more, "columns": list(experiment.dataset_version.columns)}


def _experiment_or_404(pk: int) -> Experiment:
    return get_object_or_404(selectors.experiment_list(), pk=pk)


@login_required
@permission_required("experiments.view_experiment", raise_exception=True)
@require_GET
def experiment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = _experiment_or_404(pk)
    return render(request, "experiments/experiment_detail.html", {
        **_results(request, experiment), "progress": events.progress(experiment),
        "summaries": selectors.variant_summaries(experiment),
        "can_change": request.user.has_perm("experiments.change_experiment")})


@login_required
@permission_required("experiments.view_experiment", raise_exception=True)
@require_GET
def experiment_results(request: HttpRequest, pk: int) -> HttpResponse:
    """The aggregates and the matrix alone: the page reloads them as progress arrives."""
    experiment = _experiment_or_404(pk)
    return render(request, "experiments/_results.html", {
        **_results(request, experiment), "summaries": selectors.variant_summaries(experiment)})


@login_required
@permission_required("experiments.change_experiment", raise_exception=True)
@require_POST
def experiment_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = services.experiment_cancel(experiment=get_object_or_404(Experiment, pk=pk))
    messages.info(request, "Cancelling: no cell starts any more; running ones are cancelled."
                  if experiment.status == "stopping" else "The experiment had already stopped.")
    return redirect("experiments:detail", pk=pk)


@login_required
@permission_required("experiments.change_experiment", raise_exception=True)
@require_POST
def experiment_retry(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        count = services.experiment_retry_errors(experiment=get_object_or_404(Experiment, pk=pk))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"{count} errored cells queued again." if count else "No cell had failed.")
    return redirect("experiments:detail", pk=pk)


@login_required
@permission_required("experiments.view_experiment", raise_exception=True)
@require_GET
def experiment_export(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = get_object_or_404(Experiment.objects.select_related("dataset_version"), pk=pk)
    fmt = request.GET.get("format", "csv")
    if fmt not in FORMATS:
        return HttpResponseBadRequest(f"format: one of {', '.join(FORMATS)}.")
    # Pulled as the browser reads, under daphne too (core.streaming): memory stays flat at any size.
    return streaming_response(request, export_lines(experiment, fmt), content_type=FORMATS[fmt],
                              filename=f"experiment-{experiment.pk}.{fmt}")


def _variant(experiment: Experiment | None, asked: str | None) -> Variant | None:
    if experiment is None:
        return None
    variants = experiment.variants.order_by("position")
    return (variants.filter(pk=int(asked)).first() if asked and asked.isdigit() and len(asked) < 19 else None) \
        or variants.first()


@login_required
@permission_required("experiments.view_experiment", raise_exception=True)
@require_GET
def experiment_compare(request: HttpRequest) -> HttpResponse:
    a, b = _picked(Experiment, request.GET.get("a")), _picked(Experiment, request.GET.get("b"))
    variant_a, variant_b = _variant(a, request.GET.get("va")), _variant(b, request.GET.get("vb"))
    number = _page_number(request)
    rows, more = selectors.compared_rows(variant_a, variant_b, offset=(number - 1) * ROWS_PER_PAGE,
                                         limit=ROWS_PER_PAGE) if variant_a and variant_b else ([], False)
    choices = list(selectors.experiment_list()[:COMPARE_CHOICES])
    choices += [picked for picked in (a, b) if picked is not None and picked not in choices]
    return render(request, "experiments/experiment_compare.html", {
        "a": a, "b": b, "variant_a": variant_a, "variant_b": variant_b, "rows": rows, "more": more,
        "page_number": number, "experiments": choices,
        "summaries_a": selectors.variant_summaries(a) if a else [],
        "summaries_b": selectors.variant_summaries(b) if b else []},
        status=404 if (request.GET.get("a") and a is None) or (request.GET.get("b") and b is None) else 200)
