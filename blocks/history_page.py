"""The builders' History page and its Restore POST: blocks, payloads and workflows share them; the caller
passes its selector's History, its restore service and where things are."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from core.history import History, version_get


def history_page(request: HttpRequest, *, subject: Any, kind: str, history: History, urls: dict[str, str],
                 can_restore: bool) -> HttpResponse:
    """`urls`: "list" (URL name of the builder list), "edit" and "history" (paths of this object)."""
    context = {"subject": subject, "kind": kind, "history": history, "urls": urls, "can_restore": can_restore}
    return render(request, "builders/history.html", context)


def history_restore(request: HttpRequest, *, subject: Any, number: int, restore: Callable[..., Any],
                    history_url: str) -> HttpResponse:
    version = version_get(subject.versions, number)
    latest = subject.versions.order_by("-number").values_list("number", flat=True).first()
    try:
        restore(version=version, user=request.user, message=request.POST.get("message", "").strip())
    except ValidationError as exc:
        messages.error(request, f"v{number} cannot be restored: {' '.join(exc.messages)}")
        return redirect(history_url)
    now = subject.versions.order_by("-number").values_list("number", flat=True).first()
    if now == latest:
        messages.info(request, f"v{number} has the current content already: nothing to restore.")
    else:
        messages.success(request, f"Restored v{number} as v{now}.")
    return redirect(f"{history_url}?v={number}")
