"""The run pages: list, detail (live over ws/runs/{id}/), the run form, cancel and re-run,
compare two runs, charts (per step of a run, per day of a workflow), export and replay from a step.

Views only read through selectors and write through runs.services; the live updates are done by
static/js/run-detail.js and static/js/run-list.js from the events described in docs/events.md.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from core.money import from_nano, money_text, to_nano
from core.paginators import CappedCountPaginator
from releases.models import Release
from releases.selectors import release_step_versions
from runs import selectors, services
from runs.charts import BarChart, bar_chart
from runs.costs import cost_of_steps, cost_sum, run_costs, step_cost_basis, step_cost_note, step_cost_text
from runs.forms import RunCompareForm, RunFilterForm, RunReplayForm, RunStartForm, WorkflowInputsForm
from runs.models import ACTIVE_STATUSES, Response, ResponseStatus, Run
from runs.throttling import run_start_wait, too_many_runs
from workflows import graph
from workflows.models import Workflow
from workflows.services import workflow_problems

RUNS_PER_PAGE = 25
STATS_DAYS = 30
TOKEN_SERIES = ["prompt", "completion"]


def _run_or_404(pk: int) -> Run:
    try:
        return selectors.run_detail(pk)
    except Run.DoesNotExist as exc:
        raise Http404("No such run.") from exc


def price_add_url(*, model: str, endpoint_id: int | None) -> str:
    """The Prices page's form, filled in for the model and endpoint a step had no price for."""
    try:
        base = reverse("prices:create")
    except NoReverseMatch:  # the Prices pages are not installed in this checkout yet
        base = "/prices/new/"
    query = {"model": model, **({"endpoint": endpoint_id} if endpoint_id is not None else {})}
    return f"{base}?{urlencode(query)}"


def _step_cost(response: Response, planned: list[dict[str, Any]]) -> dict[str, Any]:
    """What a step's cost line shows: the amount, where it came from, and for an unknown one a link to price it."""
    unknown = response.cost_nano is None
    cost = {"text": step_cost_text(response), "note": step_cost_note(response), "basis": step_cost_basis(response),
            "unknown": unknown, "copied": response.status == ResponseStatus.COPIED, "add_price_url": "",
            # A cache hit: what its answer would have cost at this step's price.
            "saved": "" if response.cache_saved_cost_nano is None else
            money_text(response.cache_saved_cost_nano, response.cache_saved_cost_currency or "")}
    if unknown and response.model:
        step = planned[response.index] if response.index < len(planned) else {}
        cost["add_price_url"] = price_add_url(model=response.model,
                                              endpoint_id=(step.get("payload") or {}).get("endpoint_id"))
    return cost


# A step or map item is done once it has an answer (a map item that failed under on_error skip/null
# is done too: the map went on without it); a failed or cancelled step is not.
UNIT_DONE = {ResponseStatus.SUCCEEDED, ResponseStatus.COPIED, ResponseStatus.SKIPPED}
ITEM_DONE = UNIT_DONE | {ResponseStatus.FAILED}


def step_levels(planned: list[dict[str, Any]]) -> list[int]:
    """Each planned step's depth in the run's graph: steps of one level may have run side by side.
    A snapshot from before issue 22 names no `needs`: its steps made a chain."""
    needs = [step["needs"] if step.get("needs") is not None else ([index - 1] if index else [])
             for index, step in enumerate(planned)]
    return graph.levels(needs)


def _steps(run: Run) -> list[dict[str, Any]]:
    """The steps to show: every recorded step with its map items, plus a step being run now (if any)."""
    planned = (run.snapshot or {}).get("steps", [])
    levels = step_levels(planned)
    items: dict[int, list[Response]] = {}
    steps = []
    for r in run.responses.all():
        if r.item:
            items.setdefault(r.index, []).append(r)
        else:
            steps.append({"index": r.index, "output_key": r.output_key, "payload": r.payload_name, "status": r.status,
                          "response": r, "cost": _step_cost(r, planned)})
    shown = {step["index"] for step in steps}
    # A map whose own row is not written yet (its items are still running) shows the items it has.
    steps += [{"index": index, "output_key": found[0].output_key, "payload": found[0].payload_name,
               "status": "running", "response": None} for index, found in items.items() if index not in shown]
    if run.status in ACTIVE_STATUSES and run.started_at and run.next_step < len(planned) \
            and all(s["index"] != run.next_step for s in steps):
        step = planned[run.next_step]
        steps.append({"index": run.next_step, "output_key": step["output_key"], "payload": step["payload"]["name"],
                      "status": "running", "response": None})
    for step in steps:
        index = step["index"]
        step["level"] = levels[index] if index < len(levels) else index
        step["items"] = items.get(index, [])
        step["for_each"] = planned[index].get("for_each", "") if index < len(planned) else ""
        step["item_count"] = _item_count(step)
        # One cell per item, a pending one for an item not recorded yet (it runs, or waits its turn).
        recorded = {item.item: item.status for item in step["items"]}
        step["cells"] = [{"item": n, "status": recorded.get(n, "pending")} for n in range(1, step["item_count"] + 1)]
        step["items_done"] = sum(1 for status in recorded.values() if status in ITEM_DONE)
    return sorted(steps, key=lambda step: step["index"])


def _item_count(step: dict[str, Any]) -> int:
    """How many items a map step has: its output's length once it has ended, else the items recorded so far."""
    response = step["response"]
    if response is not None and isinstance(response.output_json, list) and step["items"]:
        return max(len(response.output_json), len(step["items"]))
    return max((item.item for item in step["items"]), default=0)


def run_progress(steps: list[dict[str, Any]], step_count: int) -> dict[str, int | bool]:
    """Units done of units in all: a step is one unit, a map step one per item (once its items are known)."""
    shown = {step["index"]: step for step in steps}
    total = done = 0
    for index in range(step_count):
        step = shown.get(index)
        if step is None:
            total += 1
        elif step["item_count"]:
            total += step["item_count"]
            done += sum(1 for item in step["items"] if item.status in ITEM_DONE)
        else:
            total += 1
            done += step["status"] in UNIT_DONE
    return {"done": done, "total": total, "items": any(step["item_count"] for step in steps)}


def step_rows_by_level(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The shown steps grouped by level, in order: the run page draws each level as one row."""
    rows: dict[int, list[dict[str, Any]]] = {}
    for step in steps:
        rows.setdefault(step["level"], []).append(step)
    return [{"level": level, "steps": rows[level]} for level in sorted(rows)]


@login_required
@permission_required("runs.view_run", raise_exception=True)
@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    filters = RunFilterForm(request.GET or None)
    page = CappedCountPaginator(filters.runs(), RUNS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    # One grouped query for the page's costs, however many runs it shows.
    page.object_list = list(page.object_list)
    costs = run_costs(run.pk for run in page.object_list)
    for run in page.object_list:
        run.cost = costs[run.pk]  # type: ignore[attr-defined]
    context = {"filters": filters, "page": page, "query": query.urlencode()}
    if not page.paginator.count and not filters.is_filtered:
        context["suggested_workflow"] = selectors.workflow_to_suggest()
    # htmx swaps only the table when the filters change.
    template = "runs/_run_table.html" if request.htmx else "runs/run_list.html"
    return render(request, template, context)


@login_required
@permission_required("runs.view_run", raise_exception=True)
@require_GET
def run_row(request: HttpRequest, pk: int) -> HttpResponse:
    """One row of the runs list, for a run the list page learned about from ws/runs/."""
    run = get_object_or_404(selectors.run_list(), pk=pk)
    run.cost = run_costs([run.pk])[run.pk]  # type: ignore[attr-defined]
    return render(request, "runs/_run_row.html", {"run": run})


@login_required
@permission_required("runs.view_run", raise_exception=True)
@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run_or_404(pk)
    release = Release.objects.filter(pk=run.release_id).first() if run.release_id else None
    used = release_step_versions(release) if release is not None else {}
    steps = [{**step, "versions": used.get(step["index"], [])} for step in _steps(run)]
    planned = (run.snapshot or {}).get("steps", [])
    return render(request, "runs/run_detail.html", {
        "run": run, "release": release, "steps": steps, "step_rows": step_rows_by_level(steps),
        "levels_json": json.dumps(step_levels(planned)),
        "maps_json": json.dumps([index for index, step in enumerate(planned) if step.get("for_each")]),
        "progress": run_progress(steps, run.step_count),
        "release_versions": sorted(used.items()), "is_active": run.status in ACTIVE_STATUSES,
        "cost": cost_of_steps(run.responses.all()),
        "budget": money_text(run.budget_nano, run.budget_currency or "") if run.budget_nano is not None else "",
        "can_start": request.user.has_perm("runs.add_run"), "can_cancel": request.user.has_perm("runs.change_run"),
        "charts": _step_charts(run),
        "blank_step": {"index": "", "output_key": "", "payload": "", "status": "running", "response": None,
                       "items": [], "item_count": 0},
    })


@login_required
@permission_required("runs.view_run", raise_exception=True)
@require_GET
def run_step_prompt(request: HttpRequest, pk: int, index: int) -> HttpResponse:
    """The rendered messages that were sent for one step (opened on demand from the run page); with
    ?item=n, for the n-th item of a map step, with the item's value, answer and error."""
    run = get_object_or_404(Run.objects.only("pk"), pk=pk)
    item = request.GET.get("item", "0")
    if not item.isdigit():
        return HttpResponse("item: a whole number.", status=400, content_type="text/plain")
    response = run.responses.filter(index=index, item=int(item)).first()  # None while it is still running
    item_value = json.dumps(response.item_value, indent=2, ensure_ascii=False) if response is not None else ""
    return render(request, "runs/_step_prompt.html", {"response": response, "item": int(item), "item_value": item_value})


@login_required
@permission_required("runs.change_run", raise_exception=True)  # as the API and the admin ask
@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = services.run_cancel(run=get_object_or_404(Run, pk=pk))
    messages.info(request, f"Run {run.pk} is {run.status}.")
    return redirect("run-detail", pk=run.pk)


def _start(request: HttpRequest, form: WorkflowInputsForm, start: Callable[[], Run]) -> tuple[Run | None, int]:
    """The run started for a valid form, or None and the status to answer with, the reason on the form."""
    wait = run_start_wait(request)
    if wait is not None:
        form.add_error(None, too_many_runs(wait))
        return None, 429
    try:
        return start(), 201
    except ValidationError as exc:
        form.add_service_errors(exc)
        return None, 400


@login_required
@permission_required("runs.add_run", raise_exception=True)
@require_POST
def run_rerun(request: HttpRequest, pk: int) -> HttpResponse:
    source = get_object_or_404(Run, pk=pk)
    wait = run_start_wait(request)
    if wait is not None:
        messages.error(request, too_many_runs(wait))
        return redirect("run-detail", pk=source.pk)
    try:
        run = services.run_replay(source=source, user=request.user, from_step=0)
    except ValidationError as exc:
        for problem in exc.messages:
            messages.error(request, problem)
        return redirect("run-detail", pk=source.pk)
    return redirect("run-detail", pk=run.pk)


@login_required
@permission_required("runs.add_run", raise_exception=True)
@require_GET
def run_pick(request: HttpRequest) -> HttpResponse:
    """Which workflow to run: each with its inputs and whether it can run now."""
    workflows = [{"workflow": w, "problems": workflow_problems(w)} for w in Workflow.objects.order_by("name")]
    return render(request, "runs/run_pick.html", {"workflows": workflows})


@login_required
@permission_required("runs.add_run", raise_exception=True)
def run_start(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workflow = get_object_or_404(Workflow, pk=workflow_id)
    problems = workflow_problems(workflow)
    form = RunStartForm(workflow, request.POST if request.method == "POST" else None)
    status = 400 if request.method == "POST" else 200
    if request.method == "POST" and not problems and form.is_valid():
        run, status = _start(request, form, lambda: services.run_start(
            workflow=workflow, inputs=form.inputs(), user=request.user, **form.options()))
        if run is not None:
            return redirect("run-detail", pk=run.pk)
    return render(request, "runs/run_start.html", {"workflow": workflow, "form": form, "problems": problems},
                  status=status)


# --- charts -------------------------------------------------------------------------------------
def _ms(value: int | float) -> str:
    value = int(value)
    return f"{value} ms" if value < 1000 else f"{value / 1000:.2f} s"


def _tokens(value: int | float) -> str:
    return f"{int(value)} tokens"


def _money(currency: str) -> Callable[[int | float], str]:
    return lambda value: money_text(to_nano(Decimal(str(value))), currency)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _step_cost_charts(responses: list[Response]) -> list[BarChart]:
    """One cost chart per currency the steps were priced in (a chart never adds two currencies);
    steps of unknown cost are left out, and the caption says how many."""
    unknown = sum(1 for r in responses if r.cost_nano is None)
    by_currency: dict[str, list[Response]] = {}
    for response in responses:
        if response.cost_nano is not None and response.cost_currency:
            by_currency.setdefault(response.cost_currency, []).append(response)
    note = f"{_plural(unknown, 'step')} of unknown cost not shown." if unknown else ""
    if not by_currency:
        return [bar_chart(chart_id="chart-step-cost", title="Cost per step", series=["cost"], categories=[],
                          values=[], fmt=str, note=note or ("Every step was free." if responses else ""))]
    return [bar_chart(chart_id=f"chart-step-cost-{currency.lower()}", title="Cost per step",
                      series=[currency], categories=[f"{r.index + 1} {r.output_key}" for r in steps],
                      values=[(float(from_nano(r.cost_nano or 0)),) for r in steps], fmt=_money(currency),
                      unit=currency, note=note)
            for currency, steps in sorted(by_currency.items())]


def _step_charts(run: Run) -> list[BarChart]:
    responses = list(run.responses.all())
    # A map's item is "3.2 checked": step 3, item 2.
    labels = [f"{r.index + 1}{f'.{r.item}' if r.item else ''} {r.output_key}" for r in responses]
    return [
        bar_chart(chart_id="chart-step-latency", title="LLM latency per step", series=["latency"],
                  categories=labels, values=[(r.latency_ms,) for r in responses], fmt=_ms, unit="ms"),
        bar_chart(chart_id="chart-step-tokens", title="Tokens per step", series=TOKEN_SERIES, categories=labels,
                  values=[(r.prompt_tokens, r.completion_tokens) for r in responses], fmt=_tokens, unit="tokens"),
        *_step_cost_charts(responses),
    ]


@login_required
@permission_required("runs.view_run", raise_exception=True)
@require_GET
def run_charts(request: HttpRequest, pk: int) -> HttpResponse:
    """The per-step charts alone: the run page reloads them when its run finishes."""
    run = _run_or_404(pk)
    return render(request, "runs/_run_charts.html", {"run": run, "charts": _step_charts(run)})


def _day_cost_charts(days: list[selectors.DayStats], labels: list[str]) -> list[BarChart]:
    """The steps' cost per day, one chart per currency (never added together); unknown costs counted in the note."""
    currencies = sorted({currency for day in days for currency in day.cost.amounts})
    unpriced = sum(day.cost.unpriced for day in days)
    note = f"{_plural(unpriced, 'step')} of unknown cost not counted." if unpriced else ""
    if not currencies:
        return [bar_chart(chart_id="chart-day-cost", title="Cost per day", series=["cost"], categories=labels,
                          values=[(0,) for _ in days], fmt=str, label_every=5, note=note)]
    return [bar_chart(chart_id=f"chart-day-cost-{currency.lower()}", title="Cost per day",
                      series=[currency], categories=labels,
                      values=[(float(day.cost.amounts.get(currency, 0)),) for day in days], fmt=_money(currency),
                      unit=currency, label_every=5, note=note)
            for currency in currencies]


@login_required
@permission_required("runs.view_run", raise_exception=True)
@require_GET
def run_stats(request: HttpRequest) -> HttpResponse:
    """Per day of the last 30: runs, average and total latency, tokens and cost of one workflow."""
    workflows = Workflow.objects.order_by("name")
    workflow = None
    error = ""
    raw = request.GET.get("workflow", "")
    if raw:
        workflow = workflows.filter(pk=int(raw)).first() if raw.isdigit() and len(raw) < 18 else None
        if workflow is None:
            error = f"There is no workflow with id {raw}."
    context: dict[str, Any] = {"workflows": workflows, "workflow": workflow, "error": error, "days": STATS_DAYS,
                               "time_zone": timezone.get_current_timezone_name()}
    if workflow is not None:
        days = selectors.workflow_daily_stats(workflow, days=STATS_DAYS)
        labels = [day.day.strftime("%m-%d") for day in days]
        context.update(
            stats=list(reversed(days)),
            total_runs=sum(d.runs for d in days),
            total_tokens=sum(d.total_tokens for d in days),
            total_latency=sum(d.latency_ms for d in days),
            charts=[
                bar_chart(chart_id="chart-day-latency", title="Average LLM latency per run, per day",
                          series=["latency"], categories=labels, values=[(d.avg_latency_ms,) for d in days],
                          fmt=_ms, unit="ms", label_every=5),
                bar_chart(chart_id="chart-day-latency-total", title="Total LLM latency per day",
                          series=["latency"], categories=labels, values=[(d.latency_ms,) for d in days],
                          fmt=_ms, unit="ms", label_every=5),
                bar_chart(chart_id="chart-day-tokens", title="Average tokens per run, per day",
                          series=["tokens"], categories=labels, values=[(d.avg_tokens,) for d in days],
                          fmt=_tokens, unit="tokens", label_every=5),
                bar_chart(chart_id="chart-day-tokens-total", title="Total tokens per day", series=TOKEN_SERIES,
                          categories=labels, values=[(d.prompt_tokens, d.completion_tokens) for d in days],
                          fmt=_tokens, unit="tokens", label_every=5),
            ],
        )
        context.update(total_cost=cost_sum([d.cost for d in days]), charts=[*context["charts"], *_day_cost_charts(days, labels)])
        context["total_avg_latency"] = round(context["total_latency"] / context["total_runs"]) \
            if context["total_runs"] else 0
        context["total_avg_tokens"] = round(context["total_tokens"] / context["total_runs"]) \
            if context["total_runs"] else 0
    return render(request, "runs/run_stats.html", context, status=400 if error else 200)


# --- export -------------------------------------------------------------------------------------
@login_required
@permission_required("runs.view_run", raise_exception=True)
@require_GET
def run_export(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run_or_404(pk)
    response = HttpResponse(json.dumps(selectors.run_export(run), indent=2, ensure_ascii=False),
                            content_type="application/json; charset=utf-8")
    name = slugify(run.workflow_name) or "run"
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}-{name}.json"'
    return response


# --- compare ------------------------------------------------------------------------------------
@login_required
@permission_required("runs.view_run", raise_exception=True)
@require_GET
def run_compare(request: HttpRequest) -> HttpResponse:
    asked = bool({"a", "b", "run"} & set(request.GET))
    form = RunCompareForm(request.GET if asked else None)
    context: dict[str, Any] = {"form": form}
    if asked and form.is_valid():
        left, right = form.runs["a"], form.runs["b"]
        context.update(left=left, right=right, comparison=selectors.run_comparison(left, right))
    return render(request, "runs/run_compare.html", context, status=400 if asked and not form.is_valid() else 200)


# --- replay from a step -------------------------------------------------------------------------
@login_required
@permission_required("runs.add_run", raise_exception=True)
def run_replay(request: HttpRequest, pk: int) -> HttpResponse:
    """The source run's inputs to edit, and the step to replay from; then the new run's page."""
    source = _run_or_404(pk)
    if source.workflow is None:
        return render(request, "runs/run_replay.html", {"source": source, "form": None}, status=400)
    if request.method == "POST":
        form = RunReplayForm(source, request.POST)
        status = 400
        if form.is_valid():
            run, status = _start(request, form, lambda: services.run_replay(
                source=source, from_step=form.cleaned_data["from_step"], inputs=form.inputs(), user=request.user))
            if run is not None:
                messages.info(request, f"Replay of run #{source.pk} from step {form.cleaned_data['from_step'] + 1} "
                                       "started; compare it with the source once it has finished.")
                return redirect("run-detail", pk=run.pk)
        return render(request, "runs/run_replay.html", {"source": source, "form": form}, status=status)
    step = request.GET.get("from_step", "0")
    form = RunReplayForm(source, initial={"from_step": int(step) if step.isdigit() and len(step) < 6 else 0})
    return render(request, "runs/run_replay.html", {"source": source, "form": form})
