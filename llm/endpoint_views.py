"""The Endpoints page: list, create, edit, delete and test LLM endpoints, and set what their servers accept.

Every write goes through llm.services; the API key and extra header values are write-only here too.
"""
from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.db.models import ProtectedError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from llm import diagnostics, selectors, services
from llm.forms import CapabilityForm, EndpointForm
from llm.models import Capability, Endpoint
from llm.views import label_checks


def _endpoints() -> Any:
    return Endpoint.objects.prefetch_related("payloads")


def _list(request: HttpRequest, *, report: dict[str, Any] | None = None, tested: int | None = None) -> HttpResponse:
    return render(request, "llm/endpoint_list.html", {"endpoints": _endpoints().order_by("name"),
                                                      "report": report, "tested": tested})


@login_required
@permission_required("llm.view_endpoint", raise_exception=True)
@require_GET
def endpoint_list(request: HttpRequest) -> HttpResponse:
    return _list(request)


def _form_page(request: HttpRequest, form: EndpointForm, endpoint: Endpoint | None, status: int = 200, *,
               capability_form: CapabilityForm | None = None, report: dict[str, Any] | None = None) -> HttpResponse:
    context: dict[str, Any] = {
        "form": form, "endpoint": endpoint,
        "used_by": list(endpoint.payloads.order_by("name")) if endpoint else [],
        "can_save": request.user.has_perm("llm.change_endpoint" if endpoint else "llm.add_endpoint"),
        "report": report,
    }
    if endpoint is not None:
        context["capability_models"], context["capability_new"] = _capability_sections(endpoint, capability_form)
    return render(request, "llm/endpoint_form.html", context, status=status)


def _capability_form_id(row: Capability | None) -> str:
    return f"id_cap{row.pk}_%s" if row is not None else "id_capnew_%s"


def _capability_sections(endpoint: Endpoint, bound: CapabilityForm | None) -> tuple[list[dict[str, Any]], CapabilityForm]:
    """Per model: its table (value, source, evidence) with a choice per field; and the form for another model.
    A form sent back with errors takes the place of its blank one, so nothing typed is lost."""
    sections = []
    for entry in selectors.capability_table(endpoint):
        row = entry["row"]
        if bound is not None and not bound.new and bound.row is not None and bound.row.pk == row.pk:
            form = bound
        else:
            form = CapabilityForm(row=row, auto_id=_capability_form_id(row))
        sections.append({"row": row, "form": form,
                         "fields": [{**field, "choice": form[field["name"]]} for field in entry["fields"]]})
    new = bound if bound is not None and bound.new else CapabilityForm(new=True, auto_id=_capability_form_id(None))
    return sections, new


def _service_errors(form: EndpointForm | CapabilityForm, error: ValidationError) -> None:
    problems = error.message_dict if hasattr(error, "error_dict") else {None: error.messages}
    for field, errors in problems.items():
        name = "headers" if field == "extra_headers" else field
        form.add_error(name if name in form.fields else None, errors)


@login_required
@permission_required("llm.view_endpoint", raise_exception=True)
@require_http_methods(["GET", "POST"])
def endpoint_new(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _form_page(request, EndpointForm(), None)
    if not request.user.has_perm("llm.add_endpoint"):
        return HttpResponse("You may not create LLM endpoints.", status=403)
    form = EndpointForm(request.POST)
    if form.is_valid():
        try:
            endpoint = services.endpoint_create(api_key=form.api_key_change() or "", **form.endpoint_fields())
        except ValidationError as exc:
            _service_errors(form, exc)
        else:
            messages.success(request, f"Endpoint “{endpoint.name}” created.")
            return redirect("endpoint-edit", pk=endpoint.pk)
    return _form_page(request, form, None, status=400)


@login_required
@permission_required("llm.view_endpoint", raise_exception=True)
@require_http_methods(["GET", "POST"])
def endpoint_edit(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint, pk=pk)
    if request.method == "GET":
        return _form_page(request, EndpointForm(instance=endpoint), endpoint)
    if not request.user.has_perm("llm.change_endpoint"):
        return HttpResponse("You may not change LLM endpoints.", status=403)
    form = EndpointForm(request.POST, instance=endpoint)
    if form.is_valid():
        moves = services.endpoint_moves(endpoint=endpoint, base_url=form.cleaned_data["base_url"])
        try:
            services.endpoint_update(endpoint=endpoint, api_key=form.api_key_change(), **form.endpoint_fields())
        except ValidationError as exc:
            _service_errors(form, exc)
        else:
            messages.success(request, f"Endpoint “{endpoint.name}” saved.")
            if moves and not endpoint.has_api_key:
                messages.warning(request, "The URL now points at another server: its stored API key and the "
                                          "header values not typed again were cleared.")
            return redirect("endpoint-edit", pk=endpoint.pk)
    endpoint.refresh_from_db()
    return _form_page(request, form, endpoint, status=400)


@login_required
@permission_required("llm.view_endpoint", raise_exception=True)
@require_http_methods(["GET", "POST"])
def endpoint_delete(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint, pk=pk)
    context = {"endpoint": endpoint, "used_by": list(endpoint.payloads.order_by("name"))}
    if request.method == "GET":
        return render(request, "llm/endpoint_delete.html", context)
    if not request.user.has_perm("llm.delete_endpoint"):
        return HttpResponse("You may not delete LLM endpoints.", status=403)
    try:
        services.endpoint_delete(endpoint=endpoint)
    except ProtectedError:
        return render(request, "llm/endpoint_delete.html", {**context, "refused": True}, status=409)
    messages.success(request, f"Endpoint “{context['endpoint'].name}” deleted.")
    return redirect("endpoint-list")


@login_required
@permission_required("llm.change_endpoint", raise_exception=True)
@require_POST
def endpoint_test(request: HttpRequest, pk: int) -> HttpResponse:
    """Run llm.diagnostics on one endpoint and show its checks on the list page."""
    endpoint = get_object_or_404(Endpoint, pk=pk)
    report = label_checks(diagnostics.connectivity_test_sync(endpoint).as_dict())
    return _list(request, report=report, tested=endpoint.pk)


@login_required
@permission_required("llm.change_endpoint", raise_exception=True)
@require_POST
def endpoint_capability_set(request: HttpRequest, pk: int) -> HttpResponse:
    """Set what one model accepts, or hand fields back to learning; errors are shown on the edit page."""
    endpoint = get_object_or_404(Endpoint, pk=pk)
    row = selectors.capability_row(endpoint, request.POST.get("model", ""))
    new = request.POST.get("new") == "1" or row is None
    form = CapabilityForm(request.POST, row=row, new=new, auto_id=_capability_form_id(None if new else row))
    if form.is_valid():
        model, values = form.cleaned_data["model"], form.values()
        try:
            if values:
                services.capability_set(endpoint=endpoint, model=model, values=values)
        except ValidationError as exc:
            _service_errors(form, exc)
        else:
            messages.success(request, f"Capabilities of “{model}” saved." if values else f"Nothing changed for “{model}”.")
            return redirect(reverse("endpoint-edit", args=[endpoint.pk]) + "#capabilities")
    return _form_page(request, EndpointForm(instance=endpoint), endpoint, status=400, capability_form=form)


@login_required
@permission_required("llm.change_endpoint", raise_exception=True)
@require_POST
def endpoint_capabilities_relearn(request: HttpRequest, pk: int) -> HttpResponse:
    """Forget everything learned and set about the endpoint, then re-learn its default model by testing it."""
    endpoint = get_object_or_404(Endpoint, pk=pk)
    deleted = services.capability_reset(endpoint=endpoint)
    report = label_checks(diagnostics.connectivity_test_sync(endpoint).as_dict())
    messages.info(request, f"Forgot what was known about {deleted} model{'s' if deleted != 1 else ''}; "
                           f"re-learned “{report['model']}” with the connectivity test.")
    return _form_page(request, EndpointForm(instance=endpoint), endpoint, report=report)
