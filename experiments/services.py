"""Starting, cancelling and retrying experiments. The cells themselves are started by the driver
(experiments.driver) as capacity frees."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from datasets.models import DatasetItem, DatasetVersion
from evaluations.models import Evaluation
from evaluations.services import assertions_check, evaluation_create
from experiments import driver
from experiments.models import (
    ACTIVE_EXPERIMENT_STATUSES,
    Cell,
    CellStatus,
    Experiment,
    ExperimentStatus,
    Variant,
)
from releases.models import Release
from releases.services import label_release, release_cut
from runs.services import cache_mode_check, run_budget
from workflows.models import Workflow

MAX_REPEATS = 100
MAX_VARIANTS = 20
CELL_INSERT_BATCH = 2000


def _author(user: Any) -> Any:
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def _variant_release(workflow: Workflow, spec: Any, where: str, user: Any) -> tuple[Release, str]:
    """(release, label) for one variant: {"release": id}, {"label": name} or {"current": true}."""
    if not isinstance(spec, dict) or sum(k in spec for k in ("release", "label", "current")) != 1:
        raise ValidationError({where: ['Give exactly one of {"release": id}, {"label": name} or {"current": true}.']})
    if "label" in spec:
        try:
            return label_release(workflow=workflow, name=str(spec["label"])), str(spec["label"])
        except ValidationError as exc:
            raise ValidationError({f"{where}.label": exc.messages}) from None
    if "current" in spec:
        try:
            return release_cut(workflow=workflow, user=user)[0], ""
        except ValidationError as exc:
            raise ValidationError({f"{where}.current": exc.messages}) from None
    try:
        release = Release.objects.filter(pk=int(spec["release"])).first()
    except (TypeError, ValueError):
        raise ValidationError({f"{where}.release": [f"“{spec['release']}” is not a release id."]}) from None
    if release is None:
        raise ValidationError({f"{where}.release": [f"There is no release {spec['release']}."]})
    if release.workflow_id != workflow.pk:
        raise ValidationError({f"{where}.release": [
            f"Release {release.pk} ({release}) belongs to workflow “{release.workflow_name}”, not to “{workflow}”."]})
    return release, ""


def _variant_name(release: Release, label: str, given: Any) -> str:
    if given:
        return str(given)[:100]
    return f"{label} (r{release.number})" if label else f"r{release.number}"


def _target_problem(name: str, target: Any, declared: dict[str, Any], columns: list[str]) -> str | None:
    if name not in declared:
        return f"No variant takes an input “{name}”; the inputs are: {', '.join(declared) or 'none'}."
    if isinstance(target, str):
        target = {"column": target}
    if not isinstance(target, dict) or len(target) != 1 or not ({"column", "value"} & set(target)):
        return 'Map an input to {"column": name} or {"value": constant}.'
    if "column" in target and target["column"] not in columns:
        return (f"The dataset version has no column “{target['column']}”; its columns are: "
                f"{', '.join(columns) or 'none'}.")
    return None


def mapping_check(*, mapping: Any, columns: list[str], releases: list[Release]) -> dict[str, dict[str, Any]]:
    """The mapping as {input: {"column": c} | {"value": v}}, every variant's inputs covered.

    A string maps to the column of that name; an input not mapped takes the column of its own name
    when there is one, else its default. ValidationError names each bad input or column."""
    mapping = {} if mapping is None else mapping
    if not isinstance(mapping, dict):
        raise ValidationError({"mapping": ['The mapping is an object: {"input": "column"} or {"input": {"value": ...}}.']})
    declared = {item["name"]: item for release in reversed(releases) for item in release.snapshot.get("inputs") or []}
    errors: dict[str, list[str]] = {}
    resolved: dict[str, dict[str, Any]] = {}
    for name, target in mapping.items():
        problem = _target_problem(name, target, declared, columns)
        if problem:
            errors[f"mapping.{name}"] = [problem]
        else:
            resolved[name] = {"column": target} if isinstance(target, str) else target
    for name, item in declared.items():
        if name in resolved or name in errors:
            pass
        elif name in columns:
            resolved[name] = {"column": name}
        elif item.get("default") is None:
            errors[f"mapping.{name}"] = [f"The input “{name}” has no default and no column of that name: map it "
                                         f"to a column ({', '.join(columns) or 'none'}) or a value."]
    if errors:
        raise ValidationError(errors)
    return resolved


def _number(value: Any, field: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError({field: [f"“{value}” is not a whole number."]}) from None
    if not low <= number <= high:
        raise ValidationError({field: [f"Must be from {low} to {high}."]})
    return number


@transaction.atomic
def experiment_create(*, name: str, workflow: Workflow, dataset_version: DatasetVersion, variants: list[Any],
                      mapping: Any = None, repeats: Any = 1, concurrency: Any = 10, budget: Any = None,
                      budget_currency: str | None = None, assertions: Any = None, user: Any = None,
                      cache_mode: str | None = None) -> Experiment:
    """Check everything, then write the experiment, its variants and every cell (queued). Nothing
    runs when anything is wrong: each problem is a ValidationError naming its field. `cache_mode`
    (runs.models.CacheMode) goes to every cell's run: the response cache for every step, or for none."""
    if not (name or "").strip():
        raise ValidationError({"name": ["Give the experiment a name."]})
    if not isinstance(variants, list) or not variants:
        raise ValidationError({"variants": ["Give at least one variant."]})
    cache_mode_check(cache_mode)
    if len(variants) > MAX_VARIANTS:
        raise ValidationError({"variants": [f"At most {MAX_VARIANTS} variants."]})
    repeats = _number(repeats, "repeats", 1, MAX_REPEATS)
    concurrency = _number(concurrency, "concurrency", 1, settings.EXPERIMENTS_MAX_CONCURRENCY)
    if dataset_version.row_count == 0:
        raise ValidationError({"dataset_version": [f"{dataset_version} has no rows: there is nothing to run."]})
    picked = [_variant_release(workflow, spec, f"variants[{i}]", user) for i, spec in enumerate(variants)]
    releases = [release for release, _ in picked]
    seen: dict[int, int] = {}
    for index, release in enumerate(releases):
        if release.pk in seen:
            raise ValidationError({f"variants[{index}]": [f"Same release ({release}) as variants[{seen[release.pk]}]."]})
        seen[release.pk] = index
    resolved = mapping_check(mapping=mapping, columns=list(dataset_version.columns), releases=releases)
    assertions = assertions_check(assertions)
    cap, currency = None, ""
    for index, release in enumerate(releases):
        try:
            cap, currency_or_none = run_budget(workflow=workflow, steps=release.snapshot["steps"],
                                               budget=budget, currency=budget_currency)
        except ValidationError as exc:
            raise ValidationError({key: [f"variants[{index}]: {m}" for m in messages]
                                   for key, messages in exc.message_dict.items()}) from None
        currency = currency_or_none or ""
    cells_per_variant = dataset_version.row_count * repeats
    experiment = Experiment.objects.create(
        name=name.strip()[:200], workflow=workflow, dataset_version=dataset_version, mapping=resolved,
        repeats=repeats, concurrency=concurrency, budget_nano=cap, budget_currency=currency,
        cell_count=cells_per_variant * len(releases), queued=cells_per_variant * len(releases),
        cost_currency=currency, created_by=_author(user), started_at=timezone.now(), assertions=assertions,
        cache_mode=cache_mode,
    )
    if assertions or DatasetItem.objects.filter(version=dataset_version, assertions__isnull=False).exists():
        experiment.evaluation = evaluation_create(scope=scope(experiment), assertions=assertions, user=user,
                                                  note="Scored as cells finish.", allow_empty=True)
        experiment.save(update_fields=["evaluation"])
    made = [Variant.objects.create(experiment=experiment, position=index, release=release, label=label,
                                   name=_variant_name(release, label, (spec or {}).get("name")))
            for index, ((release, label), spec) in enumerate(zip(picked, variants, strict=True))]
    _cells_insert(experiment, made, dataset_version, repeats)
    transaction.on_commit(lambda: driver.wake(experiment.pk))
    return experiment


def _cells_insert(experiment: Experiment, variants: list[Variant], version: DatasetVersion, repeats: int) -> None:
    """Row-major (case by case, then repeat, then variant): the driver starts cells in id order, so the
    first results fill whole rows of the matrix, every variant alike."""
    batch: list[Cell] = []
    items = DatasetItem.objects.filter(version=version).order_by("position").values_list("id", "row_id", "position")
    for item_id, row_id, position in items.iterator(chunk_size=CELL_INSERT_BATCH):
        for repeat in range(repeats):
            for variant in variants:
                batch.append(Cell(experiment=experiment, variant=variant, item_id=item_id, row_id=row_id,
                                  position=position, repeat=repeat))
        if len(batch) >= CELL_INSERT_BATCH:
            Cell.objects.bulk_create(batch)
            batch = []
    if batch:
        Cell.objects.bulk_create(batch)


@transaction.atomic
def experiment_stop(*, experiment_id: int, reason: str) -> Experiment:
    """Stop starting cells (reason "cancel" or "budget"): queued cells end now (cancelled, or skipped
    for the budget), running ones are cancelled; the experiment ends when the last of them has."""
    Experiment.objects.filter(pk=experiment_id).update(ticks=F("ticks") + 1)  # the driver's lock
    experiment = Experiment.objects.get(pk=experiment_id)
    if experiment.status != ExperimentStatus.RUNNING:
        return experiment
    driver.cells_stop(experiment, reason, timezone.now())
    experiment.save(update_fields=["status", "stop_reason", "queued", "skipped", "cancelled"])
    transaction.on_commit(lambda: driver.wake(experiment_id))
    return experiment


def experiment_cancel(*, experiment: Experiment) -> Experiment:
    return experiment_stop(experiment_id=experiment.pk, reason="cancel")


@transaction.atomic
def experiment_retry_errors(*, experiment: Experiment) -> int:
    """Queue again the cells whose run failed for an error (not cancelled or skipped ones); each gets a
    new run when it starts, its old run kept. Returns how many; the experiment runs again."""
    Experiment.objects.filter(pk=experiment.pk).update(ticks=F("ticks") + 1)  # the driver's lock
    experiment.refresh_from_db()
    if experiment.status == ExperimentStatus.STOPPING:
        raise ValidationError({"status": ["The experiment is stopping: retry once it has stopped."]})
    failed = Cell.objects.filter(experiment=experiment, status=CellStatus.FAILED)
    count = failed.update(status=CellStatus.QUEUED, run=None, error="", finished_at=None, latency_ms=None,
                          prompt_tokens=None, completion_tokens=None, cost_nano=None, cost_currency="")
    if count:
        # What the failed runs cost stays spent: the experiment's cost and tokens keep it.
        experiment.failed -= count
        experiment.queued += count
        experiment.status, experiment.stop_reason, experiment.finished_at = ExperimentStatus.RUNNING, "", None
        experiment.save(update_fields=["failed", "queued", "status", "stop_reason", "finished_at"])
        transaction.on_commit(lambda: driver.wake(experiment.pk))
    return count


def scope(experiment: Experiment) -> str:
    """The evaluations' scope name of an experiment."""
    return f"experiment:{experiment.pk}"


@transaction.atomic
def experiment_reevaluate(*, experiment: Experiment, assertions: Any = None, user: Any = None) -> Evaluation:
    """Score the succeeded cells' stored outputs again, as a new evaluation (with these assertions, else
    the experiment's), which becomes the current one: nothing is run again. Cells still to finish are
    scored by it too."""
    Experiment.objects.filter(pk=experiment.pk).update(ticks=F("ticks") + 1)  # the driver's lock
    experiment.refresh_from_db()
    chosen = experiment.assertions if assertions is None else assertions_check(assertions)
    own = DatasetItem.objects.filter(version=experiment.dataset_version_id, assertions__isnull=False).exists()
    if not chosen and not own:
        raise ValidationError({"assertions": ["Give the assertions to score with: the experiment and its cases "
                                              "have none."]})
    subjects = (Cell.objects.filter(experiment=experiment, status=CellStatus.SUCCEEDED, run__isnull=False)
                .order_by("id").values_list("run_id", "item__expected", "item__assertions"))
    if not chosen:  # only the cases with assertions of their own have something to check
        subjects = subjects.filter(item__assertions__isnull=False)
    evaluation = evaluation_create(scope=scope(experiment), assertions=chosen, subjects=subjects.iterator(),
                                   user=user, note="Re-evaluation of stored outputs.", allow_empty=True)
    experiment.assertions, experiment.evaluation = chosen, evaluation
    experiment.save(update_fields=["assertions", "evaluation"])
    return evaluation


def experiment_delete(*, experiment: Experiment) -> None:
    """Delete an experiment and its cells; its runs stay (they are runs like any other)."""
    if experiment.status in ACTIVE_EXPERIMENT_STATUSES:
        raise ValidationError({"status": ["Cancel the experiment before deleting it."]})
    experiment.delete()
