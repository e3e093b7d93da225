"""The Prices page: the book's entries, add/edit/delete, and which entry a step would pay.

Every write goes through prices.services (ties and bad patterns come back next to the field);
which entry wins is prices.selectors.price_resolve, the engine's own rule.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from llm.models import Endpoint
from prices import selectors, services
from prices.forms import PriceForm, ResolveForm
from prices.models import MATCH_REGEX, Price


def _endpoint_filter(request: HttpRequest) -> Endpoint | None:
    value = request.GET.get("endpoint", "")
    return Endpoint.objects.filter(pk=int(value)).first() if value.isdigit() else None


@login_required
@permission_required("prices.view_price", raise_exception=True)
@require_GET
def price_list(request: HttpRequest) -> HttpResponse:
    endpoint = _endpoint_filter(request)
    prices = selectors.price_list()
    if endpoint is not None:
        prices = prices.filter(endpoint=endpoint)
    resolve = ResolveForm(request.GET if "resolve-model" in request.GET else None, prefix="resolve")
    resolution = None
    if resolve.is_bound and resolve.is_valid():
        chosen = resolve.cleaned_data["endpoint"]
        resolution = selectors.price_resolve(endpoint_id=chosen.pk if chosen else None,
                                             model=resolve.cleaned_data["model"], at=resolve.cleaned_data["at"])
    return render(request, "prices/price_list.html", {
        "prices": prices, "endpoint": endpoint, "resolve": resolve,
        "resolution": resolution, "endpoint_pricing": _special_endpoints(), "saved": _saved(request)})


def _saved(request: HttpRequest) -> dict[str, str] | None:
    """After a save: the reprice of the steps the saved price now covers, offered (its form filled in)."""
    saved = Price.objects.filter(pk=request.GET.get("saved", "")).first() if request.GET.get("saved", "").isdigit() else None
    if saved is None:
        return None
    model = saved.model if saved.match == MATCH_REGEX else re.escape(saved.model)
    query = urlencode({"model": model, "since": timezone.localtime(saved.effective_from).strftime("%Y-%m-%d %H:%M")})
    return {"model": saved.model, "since": saved.effective_from, "url": f"{reverse('reprice')}?{query}"}


def _special_endpoints() -> list[Endpoint]:
    """Endpoints that are not priced by the book (free, or per second): listed so no one wonders why."""
    return list(Endpoint.objects.exclude(pricing=Endpoint.PRICING_TOKENS).order_by("name"))


def _form_page(request: HttpRequest, form: PriceForm, price: Price | None, status: int = 200) -> HttpResponse:
    can_save = request.user.has_perm("prices.change_price" if price else "prices.add_price")
    return render(request, "prices/price_form.html", {"form": form, "price": price, "can_save": can_save},
                  status=status)


def _save(request: HttpRequest, form: PriceForm, price: Price | None) -> HttpResponse:
    if form.is_valid():
        try:
            saved = services.price_save(price or Price(), fields=form.price_fields())
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"Price for “{saved.model}” saved (version {saved.version}).")
            return redirect(f"{reverse('prices:list')}?saved={saved.pk}")
    return _form_page(request, form, price, status=400)


@login_required
@permission_required("prices.view_price", raise_exception=True)
@require_http_methods(["GET", "POST"])
def price_create(request: HttpRequest) -> HttpResponse:
    """`?model=qwen2.5:7b&endpoint=3` fills the form in: other pages link here to price a model they met."""
    if request.method == "GET":
        initial: dict[str, Any] = {"model": request.GET.get("model", "")[:200]}
        endpoint = _endpoint_filter(request)
        if endpoint is not None:
            initial["endpoint"] = endpoint.pk
        return _form_page(request, PriceForm(initial=initial), None)
    if not request.user.has_perm("prices.add_price"):
        return HttpResponse("You may not add prices.", status=403)
    return _save(request, PriceForm(request.POST), None)


@login_required
@permission_required("prices.view_price", raise_exception=True)
@require_http_methods(["GET", "POST"])
def price_edit(request: HttpRequest, pk: int) -> HttpResponse:
    price = get_object_or_404(Price, pk=pk)
    if request.method == "GET":
        return _form_page(request, PriceForm(instance=price), price)
    if not request.user.has_perm("prices.change_price"):
        return HttpResponse("You may not change prices.", status=403)
    return _save(request, PriceForm(request.POST, instance=price), price)


@login_required
@permission_required("prices.view_price", raise_exception=True)
@require_http_methods(["GET", "POST"])
def price_delete(request: HttpRequest, pk: int) -> HttpResponse:
    price = get_object_or_404(Price.objects.select_related("endpoint"), pk=pk)
    if request.method == "GET":
        return render(request, "prices/price_delete.html", {"price": price})
    if not request.user.has_perm("prices.delete_price"):
        return HttpResponse("You may not delete prices.", status=403)
    services.price_delete(price)
    messages.success(request, f"Price for “{price.model}” deleted.")
    return redirect("prices:list")
