"""The Payload Builder: ordered blocks with roles, LLM settings, a live preview and "Try it".

The preview and "Try it" work on what is on the page, saved or not: the page posts its whole form.
Every write goes through payloads.services.
"""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from blocks import templating
from blocks.confirm_delete import confirm_delete
from blocks.history_page import history_page, history_restore
from blocks.models import Block
from llm import tokens
from llm.models import Endpoint
from llm.selectors import endpoint_config
from llm.streaming import stream_completion
from payloads import selectors, services
from payloads.forms import PayloadForm, block_uses, sample_values
from payloads.models import Payload, Role
from payloads.services import BlockUse, RenderProblem, render_messages


def _variables_of(uses: list[BlockUse]) -> list[str]:
    return sorted({name for use in uses for name in templating.variables_of(use["block"].content)})


def _page(request: HttpRequest, *, form: PayloadForm, payload: Payload | None, uses: list[BlockUse],
          block_errors: list[str] | None = None, samples: dict[str, str] | None = None,
          status: int = 200) -> HttpResponse:
    samples = samples or {}
    return render(request, "payloads/builder.html", {
        "form": form, "payload": payload, "uses": uses, "block_errors": block_errors or [],
        "all_blocks": Block.objects.order_by("name"), "roles": Role.values,
        "samples": [(name, samples.get(name, "")) for name in _variables_of(uses)],
        "used_by": selectors.payload_used_by(payload).workflows if payload else [],
        "can_delete": request.user.has_perm("payloads.delete_payload"),
        "can_save": request.user.has_perm("payloads.change_payload" if payload else "payloads.add_payload"),
        "can_try": request.user.has_perm("payloads.change_payload"),
    }, status=status)


@login_required
@permission_required("payloads.view_payload", raise_exception=True)
@require_GET
def payload_builder(request: HttpRequest) -> HttpResponse:
    payloads = Payload.objects.select_related("endpoint").prefetch_related("payload_blocks__block", "steps__workflow")
    rows = [{"payload": p, "blocks": [pb.block for pb in p.payload_blocks.all()],
             "workflows": sorted({s.workflow.name for s in p.steps.all()}),
             "variables": sorted({n for pb in p.payload_blocks.all() for n in pb.block.variables})}
            for p in payloads.order_by("name")]
    return render(request, "payloads/list.html", {"rows": rows})


@login_required
@permission_required("payloads.view_payload", raise_exception=True)
@require_http_methods(["GET", "POST"])
def payload_new(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _page(request, form=PayloadForm(), payload=None, uses=[])
    if not request.user.has_perm("payloads.add_payload"):
        return HttpResponse("You may not create payloads.", status=403)
    form = PayloadForm(request.POST)
    uses, block_errors = block_uses(request.POST)
    if form.is_valid() and not block_errors:
        settings = form.settings()
        try:
            payload = services.payload_create(name=settings.pop("name"), endpoint=settings.pop("endpoint"),
                                              blocks=uses, user=request.user, **settings)
        except ValidationError as exc:
            block_errors = _split_block_errors(form, exc)
        else:
            messages.success(request, f"Payload “{payload.name}” created.")
            return redirect("payload-edit", pk=payload.pk)
    return _page(request, form=form, payload=None, uses=uses, block_errors=block_errors,
                 samples=sample_values(request.POST), status=400)


@login_required
@permission_required("payloads.view_payload", raise_exception=True)
@require_http_methods(["GET", "POST"])
def payload_edit(request: HttpRequest, pk: int) -> HttpResponse:
    payload = get_object_or_404(Payload.objects.select_related("endpoint"), pk=pk)
    if request.method == "GET":
        initial = {name: getattr(payload, name) for name in PayloadForm().fields}
        uses: list[BlockUse] = [{"block": pb.block, "role": pb.role}
                                for pb in payload.payload_blocks.select_related("block")]
        return _page(request, form=PayloadForm(initial=initial), payload=payload, uses=uses)
    if not request.user.has_perm("payloads.change_payload"):
        return HttpResponse("You may not change payloads.", status=403)
    form = PayloadForm(request.POST)
    uses, block_errors = block_uses(request.POST)
    if form.is_valid() and not block_errors:
        try:
            services.payload_update(payload=payload, data=form.settings(), blocks=uses, user=request.user)
        except ValidationError as exc:
            block_errors = _split_block_errors(form, exc)
        else:
            messages.success(request, f"Payload “{payload.name}” saved.")
            return redirect("payload-edit", pk=payload.pk)
    payload.refresh_from_db()
    return _page(request, form=form, payload=payload, uses=uses, block_errors=block_errors,
                 samples=sample_values(request.POST), status=400)


@login_required
@permission_required(["payloads.view_payload", "payloads.delete_payload"], raise_exception=True)
@require_http_methods(["GET", "POST"])
def payload_delete(request: HttpRequest, pk: int) -> HttpResponse:
    payload = get_object_or_404(Payload, pk=pk)
    return confirm_delete(request, thing=payload, kind="payload", used_by=selectors.payload_used_by(payload),
                          delete=lambda: services.payload_delete(payload=payload),
                          cancel_url=reverse("payload-edit", args=[payload.pk]), done_url=reverse("payload-builder"))


def _split_block_errors(form: PayloadForm, error: ValidationError) -> list[str]:
    """The service's "blocks" errors go beside the block list; the rest beside their fields."""
    problems = error.message_dict if hasattr(error, "error_dict") else {None: error.messages}
    form.add_service_errors(ValidationError({k: v for k, v in problems.items() if k != "blocks"} or []))
    return list(problems.get("blocks", []))


@login_required
@permission_required("payloads.view_payload", raise_exception=True)
@require_POST
def payload_preview(request: HttpRequest) -> HttpResponse:
    """The chat messages the page's blocks render to with its sample values, and their token count."""
    uses, block_errors = block_uses(request.POST)
    variables = _variables_of(uses)
    samples = sample_values(request.POST)
    model = request.POST.get("model") or _default_model(request.POST.get("endpoint", ""))
    context: dict[str, Any] = {"block_errors": block_errors, "variables": variables,
                               "samples": [(name, samples.get(name, "")) for name in variables],
                               # The sample fields are redrawn only when the set of names changes (keeps focus).
                               "samples_changed": set(variables) != set(samples)}
    try:
        preview, missing = services.payload_sample_preview(
            block_specs=[{"block": u["block"].name, "role": u["role"], "content": u["block"].content} for u in uses],
            samples=samples)
    except RenderProblem as exc:
        context["problem"] = str(exc)
    else:
        context.update(messages=preview, token_count=tokens.count_messages(preview, model), model=model,
                       missing=missing)
    return render(request, "payloads/_preview.html", context)


def _default_model(endpoint_id: str) -> str:
    endpoint = Endpoint.objects.filter(pk=endpoint_id).first() if endpoint_id.isdigit() else None
    return endpoint.default_model if endpoint else ""


def _try_call(request: HttpRequest) -> dict[str, Any]:
    """Everything one "Try it" call needs, or {"errors": ...} naming what is wrong on the page."""
    form = PayloadForm(request.POST)
    form.is_valid()
    # Only the fields that shape the call must be valid; an unfinished name or description does not matter.
    wrong = {k: v for k, v in form.errors.get_json_data().items() if k not in ("name", "description", "__all__")}
    uses, block_errors = block_uses(request.POST)
    if not uses and not block_errors:
        block_errors = ["Add at least one block."]
    if wrong or block_errors:
        return {"errors": {**wrong, **({"blocks": [{"message": m} for m in block_errors]} if block_errors else {})}}
    endpoint = form.cleaned_data["endpoint"]
    if not endpoint.enabled:
        return {"errors": {"endpoint": [{"message": f"Endpoint '{endpoint.name}' is disabled."}]}}
    samples = sample_values(request.POST)
    try:
        chat = render_messages([{"block": u["block"].name, "role": u["role"], "content": u["block"].content}
                                for u in uses], services.sample_variables(samples))
    except RenderProblem as exc:
        return {"errors": {"samples": [{"message": str(exc)}]}}
    settings = {k: v for k, v in form.cleaned_data.items() if k not in ("name", "description")}
    draft = Payload(**{**settings, "extra_params": settings.get("extra_params") or {}})
    return {"config": endpoint_config(endpoint), "model": draft.effective_model,
            "messages": chat, "params": draft.request_params()}


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


@login_required
@permission_required("payloads.change_payload", raise_exception=True)
@require_POST
async def payload_try(request: HttpRequest) -> HttpResponse:
    """Send the page's payload with its sample values; the answer streams back as server-sent events."""
    call = await sync_to_async(_try_call)(request)
    if "errors" in call:
        return JsonResponse({"errors": call["errors"]}, status=400)
    items = stream_completion(call["config"], model=call["model"], messages=call["messages"], params=call["params"])

    async def body() -> AsyncIterator[bytes]:
        async for kind, data in items:
            yield _sse(kind, data)

    return StreamingHttpResponse(body(), content_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@login_required
@permission_required("payloads.view_payload", raise_exception=True)
@require_GET
def payload_history(request: HttpRequest, pk: int) -> HttpResponse:
    payload = get_object_or_404(Payload, pk=pk)
    urls = {"list": "payload-builder", "edit": reverse("payload-edit", args=[pk]),
            "history": reverse("payload-history", args=[pk]), "restore": "payload-history-restore"}
    return history_page(request, subject=payload, kind="payload", urls=urls,
                        history=selectors.payload_history(payload, request.GET.get("v")),
                        can_restore=request.user.has_perm("payloads.change_payload"))


@login_required
@permission_required(["payloads.view_payload", "payloads.change_payload"], raise_exception=True)
@require_POST
def payload_history_restore(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    payload = get_object_or_404(Payload, pk=pk)
    return history_restore(request, subject=payload, number=number, restore=services.payload_version_restore,
                           history_url=reverse("payload-history", args=[pk]))
