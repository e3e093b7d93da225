"""The Datasets pages: the list, one dataset (its versions and a version's rows, paged), uploads,
adding a row, and a run's "Add to a dataset". Every write goes through datasets.services."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from datasets import selectors, services
from datasets.forms import AddRunForm, DatasetForm, RowForm, UploadForm
from datasets.importing import cases_read
from datasets.models import Dataset
from datasets.uploads import upload_handlers_set
from runs.models import Run

ROWS_PER_PAGE = 50


def _errors(error: ValidationError) -> list[str]:
    if hasattr(error, "error_dict"):
        return [f"{name}: {message}" if name not in ("file", "__all__") else message
                for name, found in error.message_dict.items() for message in found]
    return list(error.messages)


@login_required
@permission_required("datasets.view_dataset", raise_exception=True)
@require_http_methods(["GET", "POST"])
def dataset_list(request: HttpRequest) -> HttpResponse:
    form = DatasetForm(request.POST or None)
    if request.method == "POST":
        if not request.user.has_perm("datasets.add_dataset"):
            return HttpResponse("You may not add datasets.", status=403)
        if form.is_valid():
            dataset = services.dataset_create(user=request.user, **form.cleaned_data)
            return redirect("datasets:detail", pk=dataset.pk)
    return render(request, "datasets/dataset_list.html", {"datasets": selectors.dataset_list(), "form": form},
                  status=400 if form.errors else 200)


def _detail_page(request: HttpRequest, dataset: Dataset, *, upload: UploadForm | None = None,
                 row: RowForm | None = None, status: int = 200) -> HttpResponse:
    asked = request.GET.get("version", "")
    version = selectors.dataset_version(dataset, int(asked) if asked.isdigit() and len(asked) < 10 else None)
    page = Paginator(selectors.version_items(version) if version else [], ROWS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "datasets/dataset_detail.html", {
        "dataset": dataset, "version": version, "versions": selectors.dataset_versions(dataset)[:50], "page": page,
        "upload": upload or UploadForm(), "row": row or RowForm(),
        "can_change": request.user.has_perm("datasets.change_dataset")}, status=status)


@login_required
@permission_required("datasets.view_dataset", raise_exception=True)
@require_GET
def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _detail_page(request, get_object_or_404(Dataset, pk=pk))


def _version_message(request: HttpRequest, version: Any, created: bool) -> None:
    if created:
        messages.success(request, f"Version {version.number} saved: {version.row_count} rows.")
    else:
        messages.info(request, f"Nothing changed: the content is version {version.number}'s.")


@csrf_exempt  # the upload handlers must be set before the CSRF check reads the body (Django's documented way)
@login_required
@permission_required("datasets.change_dataset", raise_exception=True)
@require_POST
def dataset_upload(request: HttpRequest, pk: int) -> HttpResponse:
    if int(request.META.get("CONTENT_LENGTH") or 0) > settings.DATASET_UPLOAD_MAX_BYTES + 64 * 1024:
        return HttpResponse(f"The file is larger than {settings.DATASET_UPLOAD_MAX_BYTES} bytes.", status=413)
    upload_handlers_set(request)
    return _dataset_upload_checked(request, pk)


@csrf_protect
def _dataset_upload_checked(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = get_object_or_404(Dataset, pk=pk)
    form = UploadForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            upload.seek(0)
            cases = cases_read(upload.file, file_format=form.file_format(),
                               expected_column=form.cleaned_data["expected_column"])
            version, created = services.dataset_version_create(dataset=dataset, cases=cases, user=request.user,
                                                               message=form.cleaned_data["message"])
        except ValidationError as error:
            form.add_error("file" if hasattr(error, "error_dict") and "file" in error.message_dict else None,
                           _errors(error))
        else:
            _version_message(request, version, created)
            return redirect("datasets:detail", pk=dataset.pk)
    return _detail_page(request, dataset, upload=form, status=400)


@login_required
@permission_required("datasets.change_dataset", raise_exception=True)
@require_POST
def dataset_row_add(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = get_object_or_404(Dataset, pk=pk)
    form = RowForm(request.POST)
    if form.is_valid():
        try:
            version, created = services.dataset_rows_change(dataset=dataset, add=[form.case()], user=request.user,
                                                            message="row added")
        except ValidationError as error:
            form.add_error(None, _errors(error))
        else:
            _version_message(request, version, created)
            return redirect("datasets:detail", pk=dataset.pk)
    return _detail_page(request, dataset, row=form, status=400)


@login_required
@permission_required("datasets.change_dataset", raise_exception=True)
@permission_required("runs.view_run", raise_exception=True)
@require_POST
def dataset_case_from_run(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=run_id)
    form = AddRunForm(request.POST)
    back = reverse("run-detail", args=[run.pk])
    if not form.is_valid():
        messages.error(request, "Choose a dataset.")
        return redirect(back)
    dataset = form.cleaned_data["dataset"]
    try:
        version, _created = services.dataset_case_from_run(run=run, dataset=dataset, user=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(_errors(error)))
        return redirect(back)
    messages.success(request, f"Run {run.pk} added to “{dataset.name}” as a case (version {version.number}).")
    return redirect(f"{reverse('datasets:detail', args=[dataset.pk])}?version={version.number}")
