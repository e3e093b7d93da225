"""The Workflow Builder: steps in order with their output names, a diagram of the variable flow,
problems shown at the step that has them, and import/export of a workflow as one JSON document.

The check (diagram and problems) works on the page as it is: it applies the posted workflow through
workflows.services inside a transaction that is always rolled back, then asks workflow_problems and
workflow_variable_flow, so what the page shows is what a save would give.
"""
from __future__ import annotations

import json
import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from blocks.confirm_delete import confirm_delete
from blocks.history_page import history_page, history_restore
from blocks.selectors import UsedBy
from payloads.models import Payload
from workflows import portability, selectors, services
from workflows.diagram import flow_diagram
from workflows.forms import ON_ERROR_CHOICES, WorkflowForm, declared_inputs, step_rows, step_specs
from workflows.models import DEFAULT_MAX_PARALLEL, Workflow

IMPORT_PERMISSIONS = ("workflows.add_workflow", "payloads.add_payload", "blocks.add_block")
MAX_IMPORT_BYTES = 2 * 1024 * 1024


@login_required
@permission_required("workflows.view_workflow", raise_exception=True)
@require_GET
def workflow_builder(request: HttpRequest) -> HttpResponse:
    return render(request, "workflows/list.html", {
        "rows": selectors.workflow_list_rows(), "can_import": request.user.has_perms(IMPORT_PERMISSIONS)})


def _page(request: HttpRequest, *, form: WorkflowForm, workflow: Workflow | None, inputs: list[dict[str, Any]],
          rows: list[dict[str, Any]], step_errors: list[str] | None = None, input_errors: list[str] | None = None,
          status: int = 200) -> HttpResponse:
    return render(request, "workflows/builder.html", {
        "form": form, "workflow": workflow, "inputs": inputs, "rows": rows, "step_errors": step_errors or [],
        "input_errors": input_errors or [],
        "payloads": Payload.objects.order_by("name"), "on_error_choices": ON_ERROR_CHOICES,
        "can_save": request.user.has_perm("workflows.change_workflow" if workflow else "workflows.add_workflow"),
        "can_delete": request.user.has_perm("workflows.delete_workflow"),
    }, status=status)


@login_required
@permission_required(["workflows.view_workflow", "workflows.delete_workflow"], raise_exception=True)
@require_http_methods(["GET", "POST"])
def workflow_delete(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = get_object_or_404(Workflow, pk=pk)
    # Nothing uses a workflow: its runs keep their record and the workflow's name.
    return confirm_delete(request, thing=workflow, kind="workflow", used_by=UsedBy(),
                          delete=lambda: services.workflow_delete(workflow=workflow),
                          cancel_url=reverse("workflow-edit", args=[workflow.pk]), done_url=reverse("workflow-builder"),
                          note="Its runs stay in the run list.")


@login_required
@permission_required("workflows.view_workflow", raise_exception=True)
@require_http_methods(["GET", "POST"])
def workflow_new(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _page(request, form=WorkflowForm(), workflow=None, inputs=[{"name": "topic"}], rows=[])
    if not request.user.has_perm("workflows.add_workflow"):
        raise PermissionDenied("You may not create workflows.")
    return _save(request, workflow=None)


@login_required
@permission_required("workflows.view_workflow", raise_exception=True)
@require_http_methods(["GET", "POST"])
def workflow_edit(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = get_object_or_404(Workflow, pk=pk)
    if request.method == "GET":
        rows = [{"payload": s.payload, "output_key": s.output_key, "problems": [],
                 **{name: getattr(s, name) for name in services.FLOW_FIELDS}}
                for s in workflow.steps.select_related("payload").order_by("position", "id")]
        form = WorkflowForm(initial={"name": workflow.name, "description": workflow.description,
                                     "budget": workflow.budget, "budget_currency": workflow.budget_currency,
                                     "max_parallel": workflow.max_parallel})
        return _page(request, form=form, workflow=workflow, inputs=workflow.inputs, rows=rows)
    if not request.user.has_perm("workflows.change_workflow"):
        raise PermissionDenied("You may not change workflows.")
    return _save(request, workflow=workflow)


def _save(request: HttpRequest, *, workflow: Workflow | None) -> HttpResponse:
    form = WorkflowForm(request.POST)
    inputs, rows = declared_inputs(request.POST), step_rows(request.POST)
    step_errors: list[str] = []
    input_errors: list[str] = []
    if form.is_valid() and not any(row["problems"] for row in rows):
        fields = {**form.cleaned_data, "inputs": inputs}
        try:
            if workflow is None:
                workflow = services.workflow_create(steps=step_specs(rows), user=request.user, **fields)
            else:
                services.workflow_update(workflow=workflow, data=fields, steps=step_specs(rows), user=request.user)
        except ValidationError as exc:
            problems = exc.message_dict if hasattr(exc, "error_dict") else {None: exc.messages}
            step_errors = list(problems.pop("steps", []))
            input_errors = list(problems.pop("inputs", []))
            form.add_service_errors(ValidationError(problems) if problems else ValidationError([]))
        else:
            messages.success(request, f"Workflow “{workflow.name}” saved.")
            return redirect("workflow-edit", pk=workflow.pk)
    if workflow is not None:
        workflow.refresh_from_db()
    return _page(request, form=form, workflow=workflow, inputs=inputs, rows=rows, step_errors=step_errors,
                 input_errors=input_errors, status=400)


@login_required
@permission_required("workflows.view_workflow", raise_exception=True)
@require_POST
def workflow_check(request: HttpRequest) -> HttpResponse:
    """The diagram and the problems of the page's workflow, with each step's problems swapped in at its row."""
    rows = step_rows(request.POST)
    inputs = declared_inputs(request.POST)
    context: dict[str, Any] = {"rows": rows, "general": [], "flow": [], "warnings": [],
                               "input_names": [i["name"] for i in inputs]}
    if not any(row["problems"] for row in rows):
        context.update(_dry_run(request, inputs=inputs, rows=rows))
    context["ready"] = not context["general"] and not any(row["problems"] for row in rows)
    warned: dict[int, list[str]] = {}
    for warning in context["warnings"]:
        warned.setdefault(warning["step"], []).append(warning["message"])
    context["diagram"] = flow_diagram(context["flow"], has_inputs=bool(inputs), warnings=warned,
                                      problems={n: row["problems"] for n, row in enumerate(rows, start=1)})
    context["max_parallel"] = request.POST.get("max_parallel") or DEFAULT_MAX_PARALLEL
    return render(request, "workflows/_check.html", context)


def _dry_run(request: HttpRequest, *, inputs: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply the page to the database, read problems and flow, and roll everything back."""
    existing = Workflow.objects.filter(pk=request.POST.get("workflow_id") or None).first()
    general: list[str] = []
    flow: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    with transaction.atomic():
        try:
            if existing is None:
                # A name no one has: the check is about the steps, the name is checked on save.
                workflow = services.workflow_create(name=f"check-{uuid.uuid4().hex}", inputs=inputs,
                                                    steps=step_specs(rows))
            else:
                workflow = services.workflow_update(workflow=existing, data={"inputs": inputs},
                                                    steps=step_specs(rows))
        except ValidationError as exc:
            general = [f"{key}: {m}" if key != "__all__" else m
                       for key, messages_ in (exc.message_dict.items() if hasattr(exc, "error_dict")
                                              else [("__all__", exc.messages)]) for m in messages_]
        else:
            for problem in services.workflow_problems(workflow):
                if problem.get("step"):
                    rows[problem["step"] - 1]["problems"].append(_at_field(problem))
                else:
                    general.append(problem["message"])
            flow = services.workflow_variable_flow(workflow)
            warnings = services.workflow_warnings(workflow)
        transaction.set_rollback(True)
    return {"general": general, "flow": flow, "warnings": warnings}


def _at_field(problem: dict[str, Any]) -> str:
    """A problem of a step's when/for_each/as, saying which (a block's problem names its variable)."""
    name = problem.get("field")
    message = problem["message"]
    return f"Flow, {name}: {message}" if name and not message.startswith(name) else message


@login_required
@permission_required("workflows.view_workflow", raise_exception=True)
@require_GET
def workflow_export(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = get_object_or_404(Workflow, pk=pk)
    document = portability.workflow_export(workflow)
    response = HttpResponse(json.dumps(document, indent=2), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{slugify(workflow.name) or "workflow"}.workflow.json"'
    return response


@login_required
@permission_required("workflows.view_workflow", raise_exception=True)
@require_POST
def workflow_import(request: HttpRequest) -> HttpResponse:
    """Upload an export; the page shows what was created and what was reused."""
    if not request.user.has_perms(IMPORT_PERMISSIONS):
        raise PermissionDenied("Importing needs the permissions to add workflows, payloads and blocks.")
    upload = request.FILES.get("file")
    error = None
    if upload is None:
        error = "Choose an exported workflow file (.json)."
    elif upload.size > MAX_IMPORT_BYTES:
        error = f"The file is larger than {MAX_IMPORT_BYTES // 1024 // 1024} MB."
    else:
        try:
            document = json.loads(upload.read().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            error = f"The file is not JSON: {exc}"
        else:
            try:
                report = portability.workflow_import(
                    document=document, create_missing_endpoints=request.POST.get("create_missing_endpoints") == "on",
                    user=request.user)
            except ValidationError as exc:
                error = "; ".join(f"{k}: {', '.join(v)}" for k, v in exc.message_dict.items()) \
                    if hasattr(exc, "error_dict") else "; ".join(exc.messages)
            else:
                return render(request, "workflows/import_report.html", {"report": report.as_dict()})
    if request.htmx:
        return JsonResponse({"error": error}, status=400)
    return render(request, "workflows/list.html", {
        "rows": selectors.workflow_list_rows(), "can_import": True, "import_error": error}, status=400)


@login_required
@permission_required("workflows.view_workflow", raise_exception=True)
@require_GET
def workflow_history(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = get_object_or_404(Workflow, pk=pk)
    urls = {"list": "workflow-builder", "edit": reverse("workflow-edit", args=[pk]),
            "history": reverse("workflow-history", args=[pk]), "restore": "workflow-history-restore"}
    return history_page(request, subject=workflow, kind="workflow", urls=urls,
                        history=selectors.workflow_history(workflow, request.GET.get("v")),
                        can_restore=request.user.has_perm("workflows.change_workflow"))


@login_required
@permission_required(["workflows.view_workflow", "workflows.change_workflow"], raise_exception=True)
@require_POST
def workflow_history_restore(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    workflow = get_object_or_404(Workflow, pk=pk)
    return history_restore(request, subject=workflow, number=number, restore=services.workflow_version_restore,
                           history_url=reverse("workflow-history", args=[pk]))
