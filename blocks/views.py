"""The Block Manager: list with search, an editor with live template checking, and "used by".

The editor is a fragment: htmx loads it beside the list and posts it back; without htmx the same
URLs serve whole pages. Every write goes through blocks.services.
"""
from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from blocks import selectors, services, templating
from blocks.confirm_delete import confirm_delete
from blocks.forms import BlockForm, BlockSearchForm
from blocks.history_page import history_page, history_restore
from blocks.models import Block


def _page(request: HttpRequest, *, form: BlockForm, block: Block | None, status: int = 200) -> HttpResponse:
    """The whole page (list + editor), or only the editor when htmx asks for it."""
    used_by = selectors.block_used_by(block) if block else selectors.UsedBy()
    can_save = request.user.has_perm("blocks.change_block" if block else "blocks.add_block")
    context: dict[str, Any] = {"form": form, "edited": block, "used_by_payloads": used_by.payloads,
                               "used_by_workflows": used_by.workflows, "can_save": can_save,
                               "can_delete": request.user.has_perm("blocks.delete_block"),
                               "notice": getattr(request, "builder_notice", "")}
    if request.htmx and not request.htmx.boosted:
        # A fragment with errors is a normal answer for htmx (a 4xx would be logged as a console error);
        # a whole page with errors is a 400.
        response = render(request, "blocks/_editor.html", context)
        # The list beside the editor shows new names and variables after a save.
        if request.method == "POST" and status == 200:
            response.content += _list_html(request, oob=True, current=block)
        return response
    search = BlockSearchForm(request.GET or None)
    query = search.data.get("q", "") if search.is_bound else ""
    context.update(search=search, blocks=selectors.block_list(search=query), current=block)
    return render(request, "blocks/manager.html", context, status=status)


def _list_html(request: HttpRequest, *, oob: bool = False, current: Block | None = None) -> bytes:
    search = request.GET.get("q", "")
    context = {"blocks": selectors.block_list(search=search), "current": current, "oob": oob}
    return render(request, "blocks/_list.html", context).content


@login_required
@permission_required("blocks.view_block", raise_exception=True)
@require_GET
def block_manager(request: HttpRequest) -> HttpResponse:
    if request.htmx and request.htmx.target == "block-list":
        return HttpResponse(_list_html(request))
    return _page(request, form=BlockForm(), block=None)


@login_required
@permission_required("blocks.view_block", raise_exception=True)
@require_http_methods(["GET", "POST"])
def block_new(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _page(request, form=BlockForm(), block=None)
    if not request.user.has_perm("blocks.add_block"):
        return HttpResponse("You may not create blocks.", status=403)
    form = BlockForm(request.POST)
    if form.is_valid():
        try:
            block = services.block_create(user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            _notify(request, f"Block “{block.name}” created.")
            return _saved(request, block)
    return _page(request, form=form, block=None, status=400)


@login_required
@permission_required("blocks.view_block", raise_exception=True)
@require_http_methods(["GET", "POST"])
def block_edit(request: HttpRequest, pk: int) -> HttpResponse:
    block = get_object_or_404(Block, pk=pk)
    if request.method == "GET":
        return _page(request, form=BlockForm(initial={"name": block.name, "description": block.description,
                                                      "content": block.content}), block=block)
    if not request.user.has_perm("blocks.change_block"):
        return HttpResponse("You may not change blocks.", status=403)
    form = BlockForm(request.POST)
    if form.is_valid():
        try:
            services.block_update(block=block, data=form.cleaned_data, user=request.user)
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            _notify(request, f"Block “{block.name}” saved.")
            return _saved(request, block)
    block.refresh_from_db()  # the failed update left unsaved values on the instance
    return _page(request, form=form, block=block, status=400)


def _notify(request: HttpRequest, text: str) -> None:
    # An htmx save shows its notice in the editor it returns; a page save shows it after the redirect.
    if request.htmx:
        request.builder_notice = text  # type: ignore[attr-defined]
    else:
        messages.success(request, text)


def _saved(request: HttpRequest, block: Block) -> HttpResponse:
    if request.htmx:
        form = BlockForm(initial={"name": block.name, "description": block.description, "content": block.content})
        response = _page(request, form=form, block=block)
        response["HX-Push-Url"] = reverse("block-edit", args=[block.pk])
        return response
    return redirect("block-edit", pk=block.pk)


@login_required
@permission_required(["blocks.view_block", "blocks.delete_block"], raise_exception=True)
@require_http_methods(["GET", "POST"])
def block_delete(request: HttpRequest, pk: int) -> HttpResponse:
    block = get_object_or_404(Block, pk=pk)
    return confirm_delete(request, thing=block, kind="block", used_by=selectors.block_used_by(block),
                          delete=lambda: services.block_delete(block=block),
                          cancel_url=reverse("block-edit", args=[block.pk]), done_url=reverse("block-manager"))


@login_required
@permission_required("blocks.view_block", raise_exception=True)
@require_POST
def block_check(request: HttpRequest) -> HttpResponse:
    """Live check of the template being typed: the parse error with its line, or the variables it reads."""
    content = request.POST.get("content", "")
    try:
        templating.check_syntax(content)
    except templating.TemplateProblem as exc:
        return render(request, "blocks/_check.html", {"problem": str(exc)})
    return render(request, "blocks/_check.html", {"variables": sorted(templating.variables_of(content))})


@login_required
@permission_required("blocks.view_block", raise_exception=True)
@require_GET
def block_history(request: HttpRequest, pk: int) -> HttpResponse:
    block = get_object_or_404(Block, pk=pk)
    urls = {"list": "block-manager", "edit": reverse("block-edit", args=[pk]),
            "history": reverse("block-history", args=[pk]), "restore": "block-history-restore"}
    return history_page(request, subject=block, kind="block", urls=urls,
                        history=selectors.block_history(block, request.GET.get("v")),
                        can_restore=request.user.has_perm("blocks.change_block"))


@login_required
@permission_required(["blocks.view_block", "blocks.change_block"], raise_exception=True)
@require_POST
def block_history_restore(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    block = get_object_or_404(Block, pk=pk)
    return history_restore(request, subject=block, number=number, restore=services.block_version_restore,
                           history_url=reverse("block-history", args=[pk]))
