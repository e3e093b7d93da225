from django.conf import settings
from django.db import models

from core.fields import CompressedJSONField, CompressedTextField
from prices.book import COST_COMPUTED, COST_SOURCES
from releases.models import LABEL_NAME_MAX, Release
from workflows.models import Workflow


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    # Stopped before a step whose worst-case cost would have passed the run's cost cap.
    BUDGET_REACHED = "budget", "Budget reached"


class CacheMode(models.TextChoices):
    """A run's use of the response cache (docs/cache.md); none: its payloads' own setting."""

    USE = "use", "Use the cache"
    OFF = "off", "No cache"


# The cache choices as the run form and the new-experiment form offer them: empty is "no choice".
CACHE_MODE_CHOICES = [("", "As each payload says"), *CacheMode.choices]


def cache_mode_label(cache_mode: str | None) -> str:
    """A run's or an experiment's cache choice in the words its form offered it with."""
    return dict(CACHE_MODE_CHOICES)[cache_mode or ""]


class CacheStatus(models.TextChoices):
    """What the response cache did for a step: answered it, or had nothing and the LLM was called."""

    HIT = "hit", "Answered from the cache"
    MISS = "miss", "Not in the cache"


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.CANCELLING)
FINAL_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.BUDGET_REACHED)


class Run(models.Model):
    """One execution of a workflow. next_step and the lease fence who may write which step."""

    # Indexed by the (workflow, created_at, id) index below, which every list filtered by workflow reads.
    workflow = models.ForeignKey(Workflow, on_delete=models.SET_NULL, null=True, related_name="runs", db_index=False)
    workflow_name = models.CharField(max_length=100, db_index=True)
    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.QUEUED)
    inputs = models.JSONField(default=dict)
    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="runs",
                                db_index=False,  # the (release, latency_ms) index below starts with it
                                help_text="The tree this run runs (its snapshot); runs of one tree share it.")
    label = models.CharField(max_length=LABEL_NAME_MAX, blank=True, default="",
                             help_text="The label the run was started by, if any.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="runs")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    step_count = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0, help_text="Sum of the steps' LLM latency.")
    error = models.TextField(blank=True, default="")
    output = models.TextField(blank=True, default="")
    output_json = models.JSONField(null=True, blank=True)
    # The cost cap, in billionths of budget_currency (core.money): no step starts whose worst case
    # would pass it (runs.engine.budget). Nullable so that adding it altered the table, not rebuilt it.
    budget_nano = models.BigIntegerField(null=True, blank=True)
    budget_currency = models.CharField(max_length=3, null=True, blank=True)  # noqa: DJ001 (see above)
    # Replay: the run this one was copied from, and the first step that was not copied.
    source_run = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="replays")
    replay_from_step = models.PositiveIntegerField(null=True, blank=True)
    # The step ledger (see docs/architecture.md): the next step to run, and who holds it.
    next_step = models.PositiveIntegerField(default=0)
    lease_owner = models.CharField(max_length=100, blank=True, default="")
    lease_version = models.PositiveIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    # Nullable, so that adding it altered the table instead of rebuilding it (and its triggers).
    cache_mode = models.CharField(max_length=3, null=True, blank=True, choices=CacheMode.choices,  # noqa: DJ001
                                  help_text="Use the response cache for every step, or for none; "
                                            "empty: as each payload says.")

    class Meta:
        ordering = ["-created_at", "-id"]
        # Each list reads in the order it shows (-created_at, -id) from an index that starts with its filter,
        # so a page is the first rows of one index range: no sort, no scan of the rest. (A workflow and a
        # status together read the workflow's range: every index costs each step's commit a write.)
        indexes = [
            models.Index(fields=["status", "lease_expires_at"], name="run_claimable"),
            models.Index(fields=["created_at", "id"], name="run_newest"),
            models.Index(fields=["workflow", "created_at", "id"], name="run_workflow_newest"),
            models.Index(fields=["status", "created_at", "id"], name="run_status_newest"),
            # Partial: a run's latency grows at every step; these hold it once, when the run is final,
            # so a step's commit maintains none of them (docs/performance.md).
            models.Index(fields=["finished_at", "id"], name="run_finished", condition=models.Q(status__in=FINAL_STATUSES)),
            models.Index(fields=["latency_ms", "id"], name="run_latency", condition=models.Q(status__in=FINAL_STATUSES)),
            models.Index(fields=["release", "latency_ms"], name="run_release_latency",
                         condition=models.Q(status=RunStatus.SUCCEEDED)),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} of {self.workflow_name}"

    @property
    def snapshot(self) -> dict:
        """What the run executes: its release's snapshot (runs no longer carry a copy each)."""
        return self.release.snapshot

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def is_finished(self) -> bool:
        return self.status in FINAL_STATUSES


class ResponseStatus(models.TextChoices):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    COPIED = "copied"
    SKIPPED = "skipped"  # its `when` was false: no call; its output is the step's default


def call_was_made(*, status: str, attempts: list, prompt_tokens: int, completion_tokens: int) -> bool:
    """Whether a step reached its LLM (what it costs then depends on its price): it has attempts or
    tokens, or it was cancelled (a step is cancelled only with its call in flight). The engine's
    commit and reprice both ask this."""
    return bool(attempts or prompt_tokens or completion_tokens or status == ResponseStatus.CANCELLED)


class Response(models.Model):
    """The exact record of one step of a run: what was sent, what came back, what it cost."""

    # Indexed by the unique (run, index, item) constraint below.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="responses", db_index=False)
    index = models.PositiveIntegerField()
    # 0: the step itself. n >= 1: the n-th item of a step that maps over a list (its call, its
    # answer); the step's own row (item 0) then holds the list of the items' outputs.
    item = models.PositiveIntegerField(default=0, db_default=0)
    item_value = models.JSONField(null=True, blank=True, help_text="The list item this call was made for.")
    output_key = models.CharField(max_length=100)
    payload_name = models.CharField(max_length=100)
    endpoint_name = models.CharField(max_length=100, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    messages = CompressedJSONField(default=list, help_text="The messages sent (stored compressed).")
    request_params = models.JSONField(default=dict)
    output = CompressedTextField(blank=True, default="", help_text="The answer's text (stored compressed).")
    output_json = models.JSONField(null=True, blank=True)
    reasoning = models.TextField(blank=True, default="",
                                 help_text="The model's reasoning, apart from the answer (reasoning_content and the like).")
    finish_reason = models.CharField(max_length=40, blank=True, default="")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    tokens_estimated = models.BooleanField(default=False, help_text="The server sent no usage; counted locally.")
    reasoning_tokens = models.PositiveIntegerField(null=True, blank=True,
                                                   help_text="Of the completion tokens, those spent reasoning (when reported).")
    cached_tokens = models.PositiveIntegerField(null=True, blank=True,
                                                help_text="Of the prompt tokens, those read from the server's cache (when reported).")
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time to first token (streamed).")
    attempts = models.JSONField(default=list, help_text="Every attempt: status, error, latency.")
    status = models.CharField(max_length=10, choices=ResponseStatus.choices)
    error = models.TextField(blank=True, default="")
    copied_from = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # What the step cost and where that came from (prices.book). The cost is in billionths of
    # `cost_currency` (core.money), None when unknown; `price_id` and `price_version` name the
    # price-book entry it was computed from (a plain id: deleting an entry keeps the step's note).
    # Nullable so that adding them altered the table instead of rebuilding it; a NULL source is
    # a step recorded before the price book (`manage.py reprice` prices it).
    cost_nano = models.BigIntegerField(null=True, blank=True)
    cost_currency = models.CharField(max_length=3, null=True, blank=True)  # noqa: DJ001 (see above)
    cost_source = models.CharField(max_length=10, null=True, blank=True, choices=COST_SOURCES)  # noqa: DJ001 (see above)
    price_id = models.PositiveIntegerField(null=True, blank=True)
    price_version = models.PositiveIntegerField(null=True, blank=True)
    cost_note = models.TextField(null=True, blank=True, help_text="Which price, or why there is none.")  # noqa: DJ001 (see above)
    # The response cache (docs/cache.md): null when the step did not use it. A hit spent no tokens and
    # cost nothing; what the answer first took (tokens, cost at this step's price, latency) is "saved".
    # Nullable, as the cost fields, so that adding them altered the table.
    cache_status = models.CharField(max_length=4, null=True, blank=True, choices=CacheStatus.choices)  # noqa: DJ001
    cache_saved_prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    cache_saved_completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    cache_saved_cost_nano = models.BigIntegerField(null=True, blank=True)
    cache_saved_cost_currency = models.CharField(max_length=3, null=True, blank=True)  # noqa: DJ001
    cache_saved_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    cache_stored_at = models.DateTimeField(null=True, blank=True, help_text="When the cached answer was stored.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "index", "item"]
        constraints = [models.UniqueConstraint(fields=["run", "index", "item"], name="one_response_per_step_item")]

    def __str__(self) -> str:
        item = f" item {self.item}" if self.item else ""
        return f"Run {self.run_id} step {self.index + 1}{item} ({self.output_key})"

    @property
    def attempt_count(self) -> int:
        return len(self.attempts)

    @property
    def cost_estimated(self) -> bool:
        """A cost computed from token counts made locally (the server sent no usage) is an estimate too."""
        return self.tokens_estimated and self.cost_source == COST_COMPUTED


class RunRollup(models.Model):
    """Finished runs summed per UTC hour, workflow, release and status: what statistics read.

    Written by the database itself (runs/migrations/0007: a trigger on runs_run) in the statement
    that makes a run final, so every way of finishing a run counts it once and nothing can skip it;
    `manage.py rebuild_run_stats` recomputes it from the runs. Pruning runs leaves it as it is.
    """

    hour = models.DateTimeField(help_text="The UTC hour the runs were created in.")
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="+", db_index=False)
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=12, choices=RunStatus.choices)
    runs = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    latency_ms = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workflow", "hour", "release", "status"], name="run_rollup_key")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h workflow {self.workflow_id} {self.status}: {self.runs}"


class StepRollup(models.Model):
    """Steps of finished runs summed per UTC hour, workflow, endpoint and model (copied steps of a
    replay are not counted again). Written by the same trigger as RunRollup."""

    hour = models.DateTimeField()
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="+", db_index=False)
    endpoint_name = models.CharField(max_length=100)
    model = models.CharField(max_length=200)
    # The steps' cost in billionths of this currency ('' for steps with no currency: free or unknown).
    cost_currency = models.CharField(max_length=3, blank=True, default="")
    steps = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    latency_ms = models.BigIntegerField(default=0)
    cost_nano = models.BigIntegerField(default=0)
    unpriced = models.PositiveIntegerField(default=0, help_text="Steps whose cost is unknown (not in cost_nano).")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workflow", "hour", "endpoint_name", "model", "cost_currency"],
                                               name="step_rollup_key")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.endpoint_name}/{self.model}: {self.steps}"


class RepriceJob(models.Model):
    """A reprice of past steps (runs.reprice), applied in batches by whoever holds its lease.

    The selection is fixed when the job is made (`max_response_id`: steps committed later are never
    touched); each batch moves `last_response_id` and the totals in the same transaction as its
    updates, so a killed worker's successor resumes after the last committed batch.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    since = models.DateTimeField(null=True, blank=True, help_text="Steps created at or after this moment.")
    until = models.DateTimeField(null=True, blank=True, help_text="Steps created before this moment.")
    model_pattern = models.CharField(max_length=200, blank=True, default="",
                                     help_text="A regular expression the step's whole model name matches; empty: all.")
    workflow_name = models.CharField(max_length=100, blank=True, default="", help_text="Only runs of this workflow.")
    batch_size = models.PositiveIntegerField(default=500)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    max_response_id = models.BigIntegerField(default=0)
    last_response_id = models.BigIntegerField(default=0)
    examined = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    # Per currency, the selection's cost before and after as Decimal strings ({"USD": "12.340000000"}).
    totals_before = models.JSONField(default=dict, blank=True)
    totals_after = models.JSONField(default=dict, blank=True)
    unpriced_before = models.PositiveIntegerField(default=0)
    unpriced_after = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    lease_owner = models.CharField(max_length=100, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "lease_expires_at"], name="reprice_claimable")]

    def __str__(self) -> str:
        return f"Reprice {self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)
