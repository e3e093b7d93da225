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
from evaluations.models import Evaluation
from evaluations.services import evaluation_rescore_errors
from experiments import events, selectors, services
from experiments.export import FORMATS, export_lines
from experiments.forms import ExperimentForm, ReevaluateForm, variant_spec
from experiments.models import Experiment, Variant
from runs.charts import BarChart, bar_chart
from workflows.models import Workflow

EXPERIMENTS_PER_PAGE = 50
ROWS_PER_PAGE = 50
EVALUATIONS_SHOWN = 20
COMPARE_CHOICES = 100
FILTER_NAMES = {"": "All rows", "failures": "Only failures", "disagree": "Variants disagree"}
REGRESSIONS = "regressions"


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
            budget_currency=data["budget_currency"] or None, assertions=data["assertions"], user=user,
            cache_mode=data["cache_mode"] or None)
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


def _id(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 19 else None


def _shown_evaluation(request: HttpRequest, experiment: Experiment) -> Evaluation | None:
    """The evaluation whose marks the matrix shows: ?evaluation=<id> of this experiment, else the current one."""
    evaluations = selectors.experiment_evaluations(experiment)
    asked = _id(request.GET.get("evaluation"))
    shown = evaluations.filter(pk=asked).first() if asked else None
    return shown or (evaluations.filter(pk=experiment.evaluation_id).first() if experiment.evaluation_id else None)


SORT_NAMES = {"": "Dataset order", "latency": "Slowest first", "cost": "Costliest first", "tokens": "Most tokens first"}


def _page_rows(experiment: Experiment, row_filter: str, number: int, evaluation: Evaluation | None,
               baseline: Variant | None, sort: tuple[str, int] | None = None) -> tuple[list[Any], bool]:
    offset = (number - 1) * ROWS_PER_PAGE
    if row_filter == REGRESSIONS and evaluation is not None and baseline is not None:
        return selectors.regression_page(experiment, evaluation_id=evaluation.pk, baseline_id=baseline.pk,
                                         offset=offset, limit=ROWS_PER_PAGE)
    return selectors.results_page(experiment, row_filter=row_filter or None, offset=offset, limit=ROWS_PER_PAGE,
                                  sort=sort)


def _sort(request: HttpRequest, variants: list[Variant]) -> tuple[str, int] | None:
    """?sort=latency|cost|tokens with ?sort_variant=<id> (the first variant by default); unknown: none."""
    kind = request.GET.get("sort", "")
    if kind not in selectors.SORTS or not variants:
        return None
    chosen = next((v for v in variants if v.pk == _id(request.GET.get("sort_variant"))), variants[0])
    return kind, chosen.pk


def _pass_rate_chart(columns: list[dict[str, Any]]) -> BarChart | None:
    """Pass rate per variant with its 95 % Wilson interval, in percent."""
    scored = [c for c in columns if c["score"] is not None and c["score"].pass_rate is not None]
    if not scored:
        return None
    chart = bar_chart(
        chart_id="chart-pass-rate", title="Pass rate per variant", series=["pass rate"],
        categories=[c["variant"].name for c in scored], values=[(c["score"].pass_rate * 100,) for c in scored],
        fmt=lambda value: f"{value:.0f} %", unit="%", top=100,
        intervals=[(c["score"].interval[0] * 100, c["score"].interval[1] * 100) for c in scored],
        note="Errors are not counted; the whiskers are the 95 % Wilson interval.")
    chart.interval_name = "95 % interval"
    return chart


def _results(request: HttpRequest, experiment: Experiment) -> dict[str, Any]:
    variants = list(experiment.variants.order_by("position"))
    evaluation = _shown_evaluation(request, experiment)
    baseline = next((v for v in variants if v.pk == _id(request.GET.get("baseline"))), None)
    filters = {**FILTER_NAMES, **({REGRESSIONS: "Only regressions"} if baseline and evaluation else {})}
    row_filter = request.GET.get("filter", "")
    row_filter = row_filter if row_filter in filters else ""
    number = _page_number(request)
    sort = _sort(request, variants)
    rows, more = _page_rows(experiment, row_filter, number, evaluation, baseline, sort)
    scores = selectors.evaluation_variant_scores(evaluation.pk) if evaluation else {}
    summaries = {summary.variant.pk: summary for summary in selectors.variant_summaries(experiment)}
    columns = [{"variant": v, "summary": summaries.get(v.pk), "score": scores.get(v.pk)} for v in variants]
    kept = {key: value for key, value in (("evaluation", request.GET.get("evaluation", "") if evaluation and
                                           evaluation.pk != experiment.evaluation_id else ""),
                                          ("baseline", str(baseline.pk) if baseline else ""),
                                          ("sort", sort[0] if sort else ""),
                                          ("sort_variant", str(sort[1]) if sort else "")) if value}
    return {"experiment": experiment, "variants": variants, "filter": row_filter, "filters": filters,
            "rows": selectors.marked_rows(rows, [v.pk for v in variants], evaluation_id=evaluation.pk
                                          if evaluation else None, baseline_id=baseline.pk if baseline else None),
            "page_number": number, "more": more, "columns": list(experiment.dataset_version.columns),
            "evaluation": evaluation, "baseline": baseline, "variant_columns": columns,
            "summaries": list(summaries.values()), "pass_rate_chart": _pass_rate_chart(columns),
            "kept": kept, "results_query": request.GET.urlencode(), "sort": sort, "sorts": SORT_NAMES,
            "evaluations": list(selectors.experiment_evaluations(experiment)[:EVALUATIONS_SHOWN])}


def _experiment_or_404(pk: int) -> Experiment:
    return get_object_or_404(selectors.experiment_list(), pk=pk)


@login_required
@permission_required("experiments.view_experiment", raise_exception=True)
@require_GET
def experiment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = _experiment_or_404(pk)
    return render(request, "experiments/experiment_detail.html", {
        **_results(request, experiment), "progress": events.progress(experiment),
        "reevaluate_form": ReevaluateForm(initial={"assertions": experiment.assertions or None}),
        "can_change": request.user.has_perm("experiments.change_experiment")})


@login_required
@permission_required("experiments.view_experiment", raise_exception=True)
@require_GET
def experiment_results(request: HttpRequest, pk: int) -> HttpResponse:
    """The aggregates and the matrix alone: the page reloads them as progress arrives."""
    return render(request, "experiments/_results.html", _results(request, _experiment_or_404(pk)))


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
@permission_required("experiments.change_experiment", raise_exception=True)
@require_POST
def experiment_reevaluate(request: HttpRequest, pk: int) -> HttpResponse:
    """Score the stored outputs again as a new evaluation, with the assertions posted (else the same ones)."""
    experiment = get_object_or_404(Experiment, pk=pk)
    form = ReevaluateForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors["assertions"]))
        return redirect("experiments:detail", pk=pk)
    try:
        evaluation = services.experiment_reevaluate(experiment=experiment, assertions=form.cleaned_data["assertions"],
                                                    user=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(f"{key}: {' '.join(texts)}" for key, texts in error.message_dict.items()))
    else:
        evaluation.refresh_from_db(fields=["total"])  # its subjects were counted in the database
        messages.success(request, f"Evaluation {evaluation.number} started: {evaluation.total} stored outputs "
                                  "are scored again, nothing runs again but the judges.")
    return redirect("experiments:detail", pk=pk)


@login_required
@permission_required("experiments.change_experiment", raise_exception=True)
@require_POST
def experiment_rescore_errors(request: HttpRequest, pk: int) -> HttpResponse:
    """Score again the current evaluation's subjects that ended in error."""
    experiment = get_object_or_404(Experiment.objects.select_related("evaluation"), pk=pk)
    count = evaluation_rescore_errors(evaluation=experiment.evaluation) if experiment.evaluation else 0
    messages.success(request, f"{count} scores in error are scored again." if count else "No score was in error.")
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
