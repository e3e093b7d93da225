"""Every write of datasets: a dataset, a new version from a stream of cases (an upload, rows added,
changed or deleted, a run's case). A version is written in one transaction, its items in batches
as they stream in, so a refused file or a failure leaves nothing; its hash is computed on the way."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from core.surrogates import surrogate_path
from datasets import storage
from datasets.importing import contains_nul
from datasets.models import Dataset, DatasetVersion
from evaluations.checks import compile_assertions
from runs.models import Run, RunStatus

BATCH_SIZE = 1000

Case = dict[str, Any]


def _author(user: Any) -> Any:
    return user if user is not None and getattr(user, "is_authenticated", False) else None


@transaction.atomic
def dataset_create(*, name: str, description: str = "", user: Any = None) -> Dataset:
    dataset = Dataset(name=name, description=description, created_by=_author(user))
    dataset.full_clean()
    dataset.save()
    return dataset


@transaction.atomic
def dataset_update(*, dataset: Dataset, fields: dict[str, Any]) -> Dataset:
    for name in ("name", "description"):
        if name in fields:
            setattr(dataset, name, fields[name])
    dataset.full_clean()
    dataset.save()
    return dataset


def dataset_delete(*, dataset: Dataset) -> None:
    dataset.delete()


def case_line(case: Case) -> bytes:
    """The case as one canonical JSON line: what the version's content hash is computed over."""
    body = {"inputs": case["inputs"], "expected": case.get("expected"), "metadata": case.get("metadata") or {}}
    if case.get("assert"):  # only when present: versions hashed before cases had assertions keep their hash
        body["assert"] = case["assert"]
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


class _Unchanged(Exception):
    """The streamed content equals the latest version's: the new version is rolled back."""


class _VersionWriter:
    """Writes one version's items in batches, hashing them and collecting the columns as they pass."""

    def __init__(self, version: DatasetVersion) -> None:
        self.version = version
        self.digest = hashlib.sha256()
        self.columns: dict[str, None] = {}
        self.count = 0
        self.pending: list[Case] = []

    def add(self, case: Case) -> None:
        self.digest.update(case_line(case))
        self.columns.update(dict.fromkeys(case["inputs"]))
        self.pending.append(case)
        if len(self.pending) >= BATCH_SIZE:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        fresh = iter(storage.rows_insert(self.version.dataset_id,
                                         sum(1 for case in self.pending if case.get("row") is None)))
        items = []
        for case in self.pending:
            items.append((self.version.pk, case.get("row") or next(fresh), self.count, case["inputs"],
                          case.get("expected"), case.get("metadata") or {}, case.get("assert") or None))
            self.count += 1
        storage.items_insert(items)
        self.pending = []


def _version_write(dataset: Dataset, cases: Iterable[Case], message: str, user: Any) -> DatasetVersion:
    Dataset.objects.select_for_update().filter(pk=dataset.pk).values_list("pk", flat=True).first()
    latest = dataset.versions.order_by("-number").first()
    version = DatasetVersion.objects.create(dataset=dataset, number=(latest.number if latest else 0) + 1,
                                            content_hash="", message=message, created_by=_author(user))
    writer = _VersionWriter(version)
    for case in cases:
        writer.add(case)
    writer.flush()
    version.content_hash = writer.digest.hexdigest()
    if latest is not None and latest.content_hash == version.content_hash:
        raise _Unchanged(latest)
    version.row_count = writer.count
    version.columns = list(writer.columns)
    version.save(update_fields=["content_hash", "row_count", "columns"])
    Dataset.objects.filter(pk=dataset.pk).update(updated_at=version.created_at)
    return version


def dataset_version_create(*, dataset: Dataset, cases: Iterable[Case], message: str = "",
                           user: Any = None) -> tuple[DatasetVersion, bool]:
    """A new version holding `cases` in order, and True; or the latest version and False when the content
    equals it. A case with a `row` keeps that stable id; the others get new ones. Any error raised while
    the cases stream in (a bad line of a file) rolls everything back."""
    try:
        with transaction.atomic():
            return _version_write(dataset, cases, message, user), True
    except _Unchanged as unchanged:
        return unchanged.args[0], False


def dataset_latest_version(dataset: Dataset) -> DatasetVersion | None:
    return dataset.versions.order_by("-number").first()


def assertion_problems(specs: Any, where: str) -> list[str]:
    """A case's own assertions, as "where[i].field: message" lines; [] when they compile (or there are none)."""
    try:
        compile_assertions(specs, field_name=where)
    except ValidationError as exc:
        return [f"{field}: {message}" for field, messages in exc.message_dict.items() for message in messages]
    return []


def case_problems(case: Any, where: str) -> list[str]:
    """What is wrong with a case given over the API or a form ({"inputs": {...}, "expected": ..., "metadata": {...}})."""
    if not isinstance(case, dict):
        return [f"{where}: not a JSON object."]
    problems = [f"{where}: unknown field “{name}”." for name in case
                if name not in ("inputs", "expected", "metadata", "assert")]
    problems += assertion_problems(case.get("assert"), f"{where}.assert")
    if not isinstance(case.get("inputs"), dict) or not case.get("inputs"):
        problems.append(f"{where}.inputs: a JSON object with at least one input.")
    if not isinstance(case.get("metadata", {}), dict):
        problems.append(f"{where}.metadata: not a JSON object.")
    spot = surrogate_path(case)
    if spot:
        problems.append(f"{where}.{spot}: contains a lone surrogate, which is not valid Unicode text.")
    if contains_nul(case):
        problems.append(f"{where}: contains a NUL character (\\u0000).")
    return problems


def _changed_cases(version: DatasetVersion | None, change: dict[int, Case], delete: set[int]) -> Iterator[Case]:
    if version is None:
        return
    for item in version.items.order_by("position").iterator(chunk_size=BATCH_SIZE):
        if item.row_id in delete:
            continue
        case = {"row": item.row_id, "inputs": item.inputs, "expected": item.expected, "metadata": item.metadata,
                "assert": item.assertions}
        case.update(change.get(item.row_id, {}))
        yield case


def _check_changes(version: DatasetVersion | None, add: list[Case], change: dict[int, Case], delete: set[int]) -> None:
    problems: dict[str, list[str]] = {}
    for index, case in enumerate(add):
        problems.setdefault("add", []).extend(case_problems(case, f"add[{index}]"))
    for row_id, fields in change.items():
        merged = {"inputs": {"_": ""}, **fields} if isinstance(fields, dict) else fields
        problems.setdefault("change", []).extend(case_problems(merged, f"change[{row_id}]"))
    held = set(version.items.filter(row_id__in=[*change, *delete]).values_list("row_id", flat=True)) if version else set()
    for name, ids in (("change", change), ("delete", delete)):
        problems.setdefault(name, []).extend(f"row {row_id} is not in the latest version." for row_id in ids
                                             if row_id not in held)
    problems = {name: found for name, found in problems.items() if found}
    if problems:
        raise ValidationError(problems)


@transaction.atomic
def dataset_rows_change(*, dataset: Dataset, add: list[Case] | None = None, change: dict[int, Case] | None = None,
                        delete: list[int] | None = None, message: str = "",
                        user: Any = None) -> tuple[DatasetVersion, bool]:
    """A new version: the latest one with `change` applied to its rows (by stable id, the given fields
    replaced), `delete`d rows left out and `add`ed cases appended with new ids."""
    add, change, removed = add or [], change or {}, set(delete or [])
    Dataset.objects.select_for_update().filter(pk=dataset.pk).values_list("pk", flat=True).first()
    latest = dataset_latest_version(dataset)
    _check_changes(latest, add, change, removed)
    if not add and not change and not removed:
        raise ValidationError({"add": ["Nothing to add, change or delete."]})

    def cases() -> Iterator[Case]:
        yield from _changed_cases(latest, change, removed)
        for case in add:
            yield {"inputs": case["inputs"], "expected": case.get("expected"), "metadata": case.get("metadata") or {},
                   "assert": case.get("assert")}

    return dataset_version_create(dataset=dataset, cases=cases(), message=message, user=user)


def dataset_case_from_run(*, run: Run, dataset: Dataset, user: Any = None) -> tuple[DatasetVersion, bool]:
    """A new version with the run's inputs as a case's inputs and its output as the expected output."""
    if run.status != RunStatus.SUCCEEDED:
        raise ValidationError({"run": [f"Run {run.pk} is {run.status}: only a succeeded run's output can be a case."]})
    if not run.inputs:
        raise ValidationError({"run": [f"Run {run.pk} has no inputs to make a case of."]})
    expected = run.output_json if run.output_json is not None else run.output
    case = {"inputs": run.inputs, "expected": expected, "metadata": {"run": run.pk, "workflow": run.workflow_name}}
    return dataset_rows_change(dataset=dataset, add=[case], message=f"case from run {run.pk}", user=user)
