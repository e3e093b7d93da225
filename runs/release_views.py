"""The Releases page of a workflow (releases with how each did, labels and their log), the diff of two
releases, and "what changed since this run".

They live in runs/ because a release's impact (runs, success rate, latency, tokens) is read from the
runs (runs.selectors.release_impact), and releases/ may not import runs. Writes go through
releases.services; a form's problem is shown next to its field with everything typed kept.
"""
from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from releases import selectors as release_selectors
from releases import services as release_services
from releases.forms import (
    AgainstForm,
    LabelCreateForm,
    LabelMoveForm,
    LabelReasonForm,
    ReleaseCutForm,
    ServiceErrorsForm,
)
from releases.models import Label, LabelMove, Release
from runs.models import Run
from runs.selectors import Impact, release_impact
from workflows.models import Workflow
from workflows.services import workflow_snapshot

RELEASES_PER_PAGE = 20
HISTORY_SHOWN = 50
VIEW = ["workflows.view_workflow", "releases.view_release"]
EMPTY_TREE: dict[str, Any] = {"inputs": [], "steps": []}


def _trend(impact: Impact, older: Impact | None) -> str:
    """How the success rate moved against the release before: "worse", "better", or "" (equal or unknown)."""
    if older is None or impact.success_rate is None or older.success_rate is None:
        return ""
    if impact.success_rate < older.success_rate:
        return "worse"
    return "better" if impact.success_rate > older.success_rate else ""


def _release_rows(workflow: Workflow, page_number: str | None) -> tuple[Any, list[dict[str, Any]]]:
    """One page of releases, newest first, each with its impact and the trend against the one before."""
    page = Paginator(release_selectors.release_list(workflow.pk), RELEASES_PER_PAGE).get_page(page_number)
    releases = list(page.object_list)
    older_than_page = (Release.objects.filter(workflow=workflow, number__lt=releases[-1].number)
                       .order_by("-number").first() if releases else None)
    chain = [*releases, *([older_than_page] if older_than_page else [])]
    impact = release_impact([release.pk for release in chain])
    rows = []
    for position, release in enumerate(releases):
        older = chain[position + 1] if position + 1 < len(chain) else None
        rows.append({"release": release, "impact": impact[release.pk], "older": older,
                     "trend": _trend(impact[release.pk], impact[older.pk] if older else None)})
    return page, rows


def _label_rows(workflow: Workflow, bound: dict[str, Any]) -> list[dict[str, Any]]:
    """Each label with its move form (the posted one if it failed) and where a roll back would take it."""
    rows = []
    for label in release_selectors.label_list(workflow.pk):
        prefix = f"move-{label.name}"
        move_form = bound.get(prefix) or LabelMoveForm(workflow, prefix=prefix, initial={"release": label.release_id})
        rows.append({"label": label, "move_form": move_form,
                     "rollback_form": bound.get(f"rollback-{label.name}") or LabelReasonForm(prefix=f"rollback-{label.name}"),
                     "delete_form": bound.get(f"delete-{label.name}") or LabelReasonForm(prefix=f"delete-{label.name}"),
                     "previous": release_selectors.label_previous_release(label)})
    return rows


def _releases_page(request: HttpRequest, workflow: Workflow, *, bound: dict[str, Any] | None = None,
                   status: int = 200) -> HttpResponse:
    """The page; `bound` holds a posted form that failed, by its prefix ("cut", "new", "move-<label>", ...)."""
    bound = bound or {}
    user = request.user
    page, rows = _release_rows(workflow, request.GET.get("page"))
    context: dict[str, Any] = {
        "workflow": workflow, "page": page, "rows": rows,
        "cut_form": bound.get("cut") or ReleaseCutForm(prefix="cut"),
        "can_cut": user.has_perm("releases.add_release"),
        "can_see_labels": user.has_perm("releases.view_label"),
        "can_create_label": user.has_perm("releases.add_label"),
        "can_move_label": user.has_perm("releases.change_label"),
        "can_delete_label": user.has_perm("releases.delete_label"),
        "can_see_history": user.has_perm("releases.view_labelmove"),
        "can_see_runs": user.has_perm("runs.view_run"),
    }
    if context["can_see_labels"]:
        context["labels"] = _label_rows(workflow, bound)
        context["create_form"] = bound.get("new") or LabelCreateForm(workflow, prefix="new")
    if context["can_see_history"]:
        shown = request.GET.get("label", "")
        moves = release_selectors.label_history(workflow.pk, label=shown)
        context.update(history_label=shown, history=list(moves[:HISTORY_SHOWN]), history_more=moves.count() > HISTORY_SHOWN,
                       history_labels=sorted(set(LabelMove.objects.filter(workflow=workflow)
                                                 .values_list("label", flat=True))))
    return render(request, "releases/releases.html", context, status=status)


def _page_url(workflow: Workflow, anchor: str = "") -> str:
    return reverse("workflow-releases", args=[workflow.pk]) + (f"#{anchor}" if anchor else "")


@login_required
@permission_required(VIEW, raise_exception=True)
@require_GET
def workflow_releases(request: HttpRequest, pk: int) -> HttpResponse:
    return _releases_page(request, get_object_or_404(Workflow, pk=pk))


def _saved(request: HttpRequest, workflow: Workflow, form: ServiceErrorsForm, prefix: str,
           write: Any) -> HttpResponse | None:
    """Run the service write for a valid form; None when it was refused (the reason is on the form)."""
    if form.is_valid():
        try:
            write()
            return None
        except ValidationError as error:
            form.add_service_errors(error)
    return _releases_page(request, workflow, bound={prefix: form}, status=400)


@login_required
@permission_required([*VIEW, "releases.add_release"], raise_exception=True)
@require_POST
def release_cut(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = get_object_or_404(Workflow, pk=pk)
    form = ReleaseCutForm(request.POST, prefix="cut")
    done: dict[str, Any] = {}

    def write() -> None:
        done["release"], done["created"] = release_services.release_cut(
            workflow=workflow, user=request.user, message=form.cleaned_data["message"].strip())

    refused = _saved(request, workflow, form, "cut", write)
    if refused is not None:
        return refused
    release = done["release"]
    if done["created"]:
        messages.success(request, f"Cut release r{release.number}.")
    else:
        messages.info(request, f"The tree as it stands is release r{release.number} already: no new release.")
    return redirect(_page_url(workflow, f"release-{release.number}"))


@login_required
@permission_required([*VIEW, "releases.view_label", "releases.add_label"], raise_exception=True)
@require_POST
def label_create(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = get_object_or_404(Workflow, pk=pk)
    form = LabelCreateForm(workflow, request.POST, prefix="new")

    def write() -> None:
        data = form.cleaned_data
        if Label.objects.filter(workflow=workflow, name=data["name"]).exists():
            raise ValidationError({"name": [f"“{workflow}” has a label “{data['name']}” already: move it instead."]})
        release_services.label_set(workflow=workflow, name=data["name"], release=data["release"], user=request.user,
                                   reason=data["reason"].strip(), may_move=False)

    refused = _saved(request, workflow, form, "new", write)
    if refused is not None:
        return refused
    messages.success(request, f"Label “{form.cleaned_data['name']}” now points at r{form.cleaned_data['release'].number}.")
    return redirect(_page_url(workflow, "labels"))


def _label_or_404(workflow: Workflow, name: str) -> Label:
    return get_object_or_404(Label.objects.select_related("release"), workflow=workflow, name=name)


@login_required
@permission_required([*VIEW, "releases.view_label", "releases.change_label"], raise_exception=True)
@require_POST
def label_move(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    workflow = get_object_or_404(Workflow, pk=pk)
    label = _label_or_404(workflow, name)
    before = label.release
    form = LabelMoveForm(workflow, request.POST, prefix=f"move-{name}")
    refused = _saved(request, workflow, form, f"move-{name}", lambda: release_services.label_set(
        workflow=workflow, name=name, release=form.cleaned_data["release"], user=request.user,
        reason=form.cleaned_data["reason"].strip(), may_create=False))
    if refused is not None:
        return refused
    to = form.cleaned_data["release"]
    if to.pk == before.pk:
        messages.info(request, f"Label “{name}” points at r{to.number} already: nothing moved.")
    else:
        messages.success(request, f"Moved label “{name}” from r{before.number} to r{to.number}.")
    return redirect(_page_url(workflow, "labels"))


@login_required
@permission_required([*VIEW, "releases.view_label", "releases.change_label"], raise_exception=True)
@require_POST
def label_rollback(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    """Move the label back to the release it pointed at before its latest move."""
    workflow = get_object_or_404(Workflow, pk=pk)
    label = _label_or_404(workflow, name)
    previous = release_selectors.label_previous_release(label)
    form = LabelReasonForm(request.POST, prefix=f"rollback-{name}")
    if previous is None:
        form.is_valid()
        form.add_error(None, f"Label “{name}” has not moved since it was created: there is nothing to roll back to.")
        return _releases_page(request, workflow, bound={f"rollback-{name}": form}, status=400)
    before = label.release

    def write() -> None:
        why = form.cleaned_data["reason"].strip()
        release_services.label_set(workflow=workflow, name=name, release=previous, user=request.user,
                                   reason=f"Roll back to r{previous.number}" + (f": {why}" if why else ""))

    refused = _saved(request, workflow, form, f"rollback-{name}", write)
    if refused is not None:
        return refused
    messages.success(request, f"Rolled label “{name}” back from r{before.number} to r{previous.number}.")
    return redirect(_page_url(workflow, "labels"))


@login_required
@permission_required([*VIEW, "releases.view_label", "releases.delete_label"], raise_exception=True)
@require_POST
def label_delete(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    workflow = get_object_or_404(Workflow, pk=pk)
    label = _label_or_404(workflow, name)
    form = LabelReasonForm(request.POST, prefix=f"delete-{name}")
    refused = _saved(request, workflow, form, f"delete-{name}", lambda: release_services.label_delete(
        label=label, user=request.user, reason=form.cleaned_data["reason"].strip()))
    if refused is not None:
        return refused
    messages.success(request, f"Deleted label “{name}” (it pointed at r{label.release.number}).")
    return redirect(_page_url(workflow, "labels"))


# --- diffs --------------------------------------------------------------------------------------

def _diff_page(request: HttpRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    old, new = context.pop("old_tree", None), context.pop("new_tree", None)
    if old is not None and new is not None:
        context["diff"] = release_selectors.tree_diff(old, new)
    return render(request, "releases/diff.html", context, status=status)


@login_required
@permission_required(VIEW, raise_exception=True)
@require_GET
def release_diff(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    """The release against another (default: the one before it) or, with ?against=current, the live tree."""
    workflow = get_object_or_404(Workflow, pk=pk)
    try:
        release = release_selectors.release_get(workflow.pk, number)
    except Release.DoesNotExist:
        raise Http404(f"“{workflow}” has no release r{number}.") from None
    asked = "against" in request.GET
    form = AgainstForm(request.GET if asked else None, noun="release number")
    context: dict[str, Any] = {"workflow": workflow, "release": release, "form": form,
                               "others": Release.objects.filter(workflow=workflow).exclude(pk=release.pk)
                               .order_by("-number").only("number", "message")}
    if asked and not form.is_valid():
        return _diff_page(request, context, status=400)
    against = form.cleaned_data["against"] if asked else ""
    if against == "current":
        context.update(old_label=f"r{release.number}", new_label="the current tree", against="current",
                       old_tree=release.snapshot, new_tree=workflow_snapshot(workflow))
        return _diff_page(request, context)
    base = (Release.objects.filter(workflow=workflow, number=against).first() if against
            else Release.objects.filter(workflow=workflow, number__lt=number).order_by("-number").first())
    if against and base is None:
        form.add_error("against", f"“{workflow}” has no release r{against}.")
        return _diff_page(request, context, status=404)
    context.update(base=base, old_label=f"r{base.number}" if base else "Nothing (the first release)",
                   new_label=f"r{release.number}", against=str(base.number) if base else "",
                   old_tree=base.snapshot if base else EMPTY_TREE, new_tree=release.snapshot)
    return _diff_page(request, context)


@login_required
@permission_required(["runs.view_run", "releases.view_release"], raise_exception=True)
@require_GET
def run_changes(request: HttpRequest, pk: int) -> HttpResponse:
    """What changed between the tree this run ran and the current tree (default), or another run's."""
    run = get_object_or_404(Run.objects.select_related("release", "workflow"), pk=pk)
    form = AgainstForm(request.GET if "against" in request.GET else {"against": "current"}, noun="run id")
    context: dict[str, Any] = {"run": run, "form": form, "workflow": run.workflow}
    if not form.is_valid():
        return _diff_page(request, context, status=400)
    against = form.cleaned_data["against"]
    old_label = f"Run #{run.pk}" + (f" (r{run.release.number})" if run.release else "")
    if against == "current":
        if run.workflow is None:
            form.add_error("against", f"The workflow of run #{run.pk} was deleted: compare with another run's id.")
            return _diff_page(request, context, status=400)
        context.update(old_label=old_label, new_label="the current tree", against="current",
                       old_tree=run.snapshot, new_tree=workflow_snapshot(run.workflow))
        return _diff_page(request, context)
    other = Run.objects.select_related("release").filter(pk=against).first()
    if other is None:
        form.add_error("against", f"There is no run #{against}.")
        return _diff_page(request, context, status=404)
    context.update(other=other, old_label=old_label, against=str(other.pk),
                   new_label=f"run #{other.pk}" + (f" (r{other.release.number})" if other.release else ""),
                   old_tree=run.snapshot, new_tree=other.snapshot)
    return _diff_page(request, context)
