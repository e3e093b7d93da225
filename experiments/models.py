"""Experiments: one or more variants of a workflow (each a release) run over one dataset version,
each case optionally repeated. Every cell (variant x case x repeat) is one run of the engine.

Cells are rows, started as capacity frees (experiments.driver): a queued cell costs a row, not a
task. A cell gets its run in the same transaction that marks it running, so a cell never has two
runs at once; the run itself is as durable as any run (the step ledger).
"""
from django.conf import settings
from django.db import models

from datasets.models import DatasetItem, DatasetRow, DatasetVersion
from evaluations.models import Evaluation
from releases.models import LABEL_NAME_MAX, Release
from runs.models import CacheMode, Run, cache_mode_label
from workflows.models import Workflow


class ExperimentStatus(models.TextChoices):
    RUNNING = "running"
    # Asked to stop (cancelled, or its budget reached): no cell starts; running cells end first.
    STOPPING = "stopping"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    BUDGET_REACHED = "budget", "Budget reached"


ACTIVE_EXPERIMENT_STATUSES = (ExperimentStatus.RUNNING, ExperimentStatus.STOPPING)


class Experiment(models.Model):
    name = models.CharField(max_length=200)
    workflow = models.ForeignKey(Workflow, on_delete=models.PROTECT, related_name="experiments")
    dataset_version = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, related_name="experiments")
    mapping = models.JSONField(default=dict, help_text='Per workflow input: {"column": name} or {"value": constant}.')
    repeats = models.PositiveIntegerField(default=1)
    concurrency = models.PositiveIntegerField(default=10, help_text="At most this many cells run at once.")
    # The cost cap in billionths of budget_currency (core.money), checked as cells finish.
    budget_nano = models.BigIntegerField(null=True, blank=True)
    budget_currency = models.CharField(max_length=3, blank=True, default="")
    # The assertions every succeeded cell is scored with, and the evaluation that takes its scores as cells
    # finish (a re-evaluation with other assertions becomes the current one; earlier ones are kept).
    assertions = models.JSONField(default=list, blank=True)
    evaluation = models.ForeignKey(Evaluation, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    status = models.CharField(max_length=10, choices=ExperimentStatus.choices, default=ExperimentStatus.RUNNING)
    stop_reason = models.CharField(max_length=10, blank=True, default="", help_text="Why it is stopping: cancel or budget.")
    # Counters, kept by the driver's tick in the transaction that changes the cells.
    cell_count = models.PositiveIntegerField(default=0)
    queued = models.PositiveIntegerField(default=0)
    running = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0, help_text="Never started: the budget was reached first.")
    # What the finished cells cost, in cost_currency; cells with no price (or another currency) are `unpriced`.
    cost_nano = models.BigIntegerField(default=0)
    cost_currency = models.CharField(max_length=3, blank=True, default="")
    unpriced = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cache_mode = models.CharField(max_length=3, null=True, blank=True, choices=CacheMode.choices,  # noqa: DJ001
                                  help_text="Passed to its cells' runs: use the response cache, or none; "
                                            "empty: as each payload says.")
    ticks = models.PositiveBigIntegerField(default=0, help_text="Driver passes: each takes the row's lock first.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status"], name="experiment_status")]

    def __str__(self) -> str:
        return self.name

    @property
    def cache_mode_label(self) -> str:
        return cache_mode_label(self.cache_mode)

    @property
    def is_finished(self) -> bool:
        return self.status not in ACTIVE_EXPERIMENT_STATUSES

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.cancelled + self.skipped


class Variant(models.Model):
    """One column of the matrix: a release of the experiment's workflow (given, or a label's when the
    experiment started)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="+")
    label = models.CharField(max_length=LABEL_NAME_MAX, blank=True, default="",
                             help_text="The label this variant was resolved from, if any.")

    class Meta:
        ordering = ["experiment_id", "position"]
        constraints = [models.UniqueConstraint(fields=["experiment", "position"], name="variant_position_unique")]

    def __str__(self) -> str:
        return self.name


class CellStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # the experiment stopped (budget) before it started


FINAL_CELL_STATUSES = (CellStatus.SUCCEEDED, CellStatus.FAILED, CellStatus.CANCELLED, CellStatus.SKIPPED)


class Cell(models.Model):
    """One variant x case x repeat. Its run's figures are copied here when it finishes, so the matrix
    and its aggregates read one table."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="cells", db_index=False)
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="cells")
    item = models.ForeignKey(DatasetItem, on_delete=models.PROTECT, related_name="+")
    row = models.ForeignKey(DatasetRow, on_delete=models.PROTECT, related_name="+", help_text="The case's stable id.")
    position = models.PositiveIntegerField(help_text="The case's position in the dataset version.")
    repeat = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=CellStatus.choices, default=CellStatus.QUEUED)
    run = models.OneToOneField(Run, on_delete=models.SET_NULL, null=True, blank=True, related_name="experiment_cell")
    tries = models.PositiveIntegerField(default=0, help_text="Runs started for this cell (a retry starts another).")
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost_nano = models.BigIntegerField(null=True, blank=True)
    cost_currency = models.CharField(max_length=3, blank=True, default="")
    error = models.TextField(blank=True, default="")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["experiment_id", "position", "repeat", "variant_id"]
        constraints = [models.UniqueConstraint(fields=["experiment", "position", "repeat", "variant"],
                                               name="cell_unique")]
        # The driver reads an experiment's queued cells in order and its running ones; counts by status.
        indexes = [models.Index(fields=["experiment", "status", "id"], name="cell_experiment_status")]

    def __str__(self) -> str:
        return f"{self.experiment_id}: {self.variant_id} x #{self.position} r{self.repeat}"
