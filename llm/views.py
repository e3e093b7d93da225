"""The LLM Tester page: send a prompt to an endpoint and watch the answer stream; run the connectivity test.

The streaming and test views are async: they run on the server's event loop, where llm.client keeps
its pooled connections, and a streamed answer is sent as server-sent events while it arrives.
"""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST

from llm import client, diagnostics, selectors
from llm.forms import ConnectivityForm, TesterForm
from llm.models import Endpoint
from llm.streaming import stream_completion

# What each check of llm.diagnostics is called on the page.
CHECK_LABELS = {
    "reachable": "Reachable", "model": "Model exists", "completion": "Completion", "streaming": "Streaming",
    "stream_usage": "Usage while streaming", "structured_output": "Structured output",
}


@login_required
@permission_required("llm.view_endpoint", raise_exception=True)
@require_GET
def tester(request: HttpRequest) -> HttpResponse:
    first = Endpoint.objects.filter(enabled=True).order_by("name").first()
    form = TesterForm(initial={"endpoint": first, "model": first.default_model if first else ""})
    return render(request, "llm/tester.html", {"form": form, "has_endpoints": first is not None,
                                               "can_call": request.user.has_perm("llm.change_endpoint")})


@login_required
@permission_required("llm.view_endpoint", raise_exception=True)
@require_GET
async def endpoint_models(request: HttpRequest, pk: int) -> JsonResponse:
    """The endpoint's model list for the model picker; on failure the default model and the reason."""
    endpoint = await Endpoint.objects.filter(pk=pk, enabled=True).afirst()
    if endpoint is None:
        return JsonResponse({"error": "No such enabled endpoint."}, status=404)
    try:
        models = await client.list_models(await selectors.aendpoint_config(endpoint))
    except client.LLMError as exc:
        return JsonResponse({"models": [endpoint.default_model], "default_model": endpoint.default_model,
                             "error": exc.message})
    return JsonResponse({"models": models, "default_model": endpoint.default_model, "error": None})


def _sse(kind: str, data: dict) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


@login_required
@permission_required("llm.change_endpoint", raise_exception=True)
@require_POST
async def tester_stream(request: HttpRequest) -> HttpResponse:
    """Server-sent events: delta / reset while the answer streams, then done or error (docs/events.md)."""
    form = TesterForm(request.POST)
    if not await sync_to_async(form.is_valid)():
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    config = await selectors.aendpoint_config(form.cleaned_data["endpoint"])
    items = stream_completion(config, model=form.cleaned_data["model"], messages=form.messages(),
                              params=form.params())

    async def body() -> AsyncIterator[bytes]:
        async for kind, data in items:
            yield _sse(kind, data)

    return StreamingHttpResponse(body(), content_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@login_required
@permission_required("llm.change_endpoint", raise_exception=True)
@require_POST
async def connectivity_test(request: HttpRequest) -> HttpResponse:
    """Each check of llm.diagnostics with its result and latency, as an HTML fragment."""
    form = ConnectivityForm(request.POST)
    if not await sync_to_async(form.is_valid)():
        return HttpResponse(render_to_string("llm/_checks.html", {"form_errors": form.errors}), status=400)
    endpoint = form.cleaned_data["endpoint"]
    report = (await diagnostics.aconnectivity_test(endpoint, model=form.cleaned_data["model"] or None)).as_dict()
    return HttpResponse(render_to_string("llm/_checks.html", {"report": label_checks(report)}))


def label_checks(report: dict[str, Any]) -> dict[str, Any]:
    """The connectivity report with each check's name as the pages call it."""
    for check in report["checks"]:
        check["label"] = CHECK_LABELS.get(check["name"], check["name"])
    return report
