"""The run pages: list, detail (live over ws/runs/{id}/), the run form, cancel and re-run.

Views only read through selectors and write through runs.services; the live updates are done by
static/js/run-detail.js and static/js/run-list.js from the events described in docs/events.md.
"""
from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from runs import selectors, services
from runs.forms import RunFilterForm, WorkflowInputsForm
from runs.models import ACTIVE_STATUSES, ResponseStatus, Run
from workflows.models import Workflow
from workflows.services import workflow_problems

RUNS_PER_PAGE = 25


def _run_or_404(pk: int) -> Run:
    try:
        return selectors.run_detail(pk)
    except Run.DoesNotExist as exc:
        raise Http404("No such run.") from exc


def _steps(run: Run) -> list[dict[str, Any]]:
    """The steps to show: every recorded response, plus the step being run now (if any)."""
    planned = (run.snapshot or {}).get("steps", [])
    steps = [{"index": r.index, "output_key": r.output_key, "payload": r.payload_name, "status": r.status,
              "response": r} for r in run.responses.all()]
    if run.status in ACTIVE_STATUSES and run.started_at and run.next_step < len(planned) \
            and all(s["index"] != run.next_step for s in steps):
        step = planned[run.next_step]
        steps.append({"index": run.next_step, "output_key": step["output_key"], "payload": step["payload"]["name"],
                      "status": "running", "response": None})
    return steps


@login_required
@permission_required("runs.view_run", raise_exception=True)
@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    filters = RunFilterForm(request.GET or None)
    page = Paginator(filters.runs(), RUNS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"filters": filters, "page": page, "query": query.urlencode()}
    # htmx swaps only the table when the filters change.
    template = "runs/_run_table.html" if request.htmx else "runs/run_list.html"
    return render(request, template, context)


@login_required
@permission_required("runs.view_run", raise_exception=True)
@require_GET
def run_row(request: HttpRequest, pk: int) -> HttpResponse:
    """One row of the runs list, for a run the list page learned about from ws/runs/."""
    return render(request, "runs/_run_row.html", {"run": get_object_or_404(selectors.run_list(), pk=pk)})


@login_required
@permission_required("runs.view_run", raise_exception=True)
@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run_or_404(pk)
    done = sum(1 for r in run.responses.all() if r.status in (ResponseStatus.SUCCEEDED, ResponseStatus.COPIED))
    return render(request, "runs/run_detail.html", {
        "run": run, "steps": _steps(run), "done_steps": done, "is_active": run.status in ACTIVE_STATUSES,
        "can_start": request.user.has_perm("runs.add_run"),
        "blank_step": {"index": "", "output_key": "", "payload": "", "status": "running", "response": None},
    })


@login_required
@permission_required("runs.view_run", raise_exception=True)
@require_GET
def run_step_prompt(request: HttpRequest, pk: int, index: int) -> HttpResponse:
    """The rendered messages that were sent for one step (opened on demand from the run page)."""
    run = get_object_or_404(Run.objects.only("pk"), pk=pk)
    response = run.responses.filter(index=index).first()  # None while the step is still running
    return render(request, "runs/_step_prompt.html", {"response": response})


@login_required
@permission_required("runs.add_run", raise_exception=True)
@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = services.run_cancel(run=get_object_or_404(Run, pk=pk))
    messages.info(request, f"Run {run.pk} is {run.status}.")
    return redirect("run-detail", pk=run.pk)


@login_required
@permission_required("runs.add_run", raise_exception=True)
@require_POST
def run_rerun(request: HttpRequest, pk: int) -> HttpResponse:
    source = get_object_or_404(Run, pk=pk)
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
    form = WorkflowInputsForm(workflow, request.POST if request.method == "POST" else None)
    if request.method == "POST" and not problems and form.is_valid():
        try:
            run = services.run_start(workflow=workflow, inputs=form.inputs(), user=request.user)
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            return redirect("run-detail", pk=run.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "runs/run_start.html", {"workflow": workflow, "form": form, "problems": problems},
                  status=status)
