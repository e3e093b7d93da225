"""The builders' Delete page: a confirm step, then a POST; refused while something uses the object.

Blocks, payloads and workflows share it; the caller passes what uses the object and how to delete it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from blocks.selectors import UsedBy
from blocks.services import InUse


def confirm_delete(request: HttpRequest, *, thing: Any, kind: str, used_by: UsedBy, delete: Callable[[], None],
                   cancel_url: str, done_url: str, note: str = "") -> HttpResponse:
    context = {"thing": thing, "kind": kind, "used_by": used_by, "cancel_url": cancel_url, "note": note}
    if request.method != "POST":
        return render(request, "builders/confirm_delete.html", context)
    try:
        delete()
    except InUse as exc:
        # Something started using it since the confirm page was shown.
        return render(request, "builders/confirm_delete.html", {**context, "used_by": exc.used_by}, status=409)
    messages.success(request, f"{kind.capitalize()} “{thing.name}” deleted.")
    return redirect(done_url)
