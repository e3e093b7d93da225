"""Evaluations: one scoring of stored outputs with a fixed list of assertions.

An evaluation never changes its assertions: scoring the same outputs with other assertions is a new
evaluation, kept beside the old one. Its subjects are written with it, one `Score` per run, pending;
they are scored in batches (evaluations.work), each batch committed with its scores, so a crash
loses at most a batch's work and nothing is scored twice.
"""
from django.conf import settings
from django.db import models

from runs.models import Run
from workflows.models import Workflow


class EvaluationStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Evaluation(models.Model):
    scope = models.CharField(max_length=100, db_index=True,
                             help_text='What was scored: "experiment:12", or "runs" for runs picked one by one.')
    number = models.PositiveIntegerField(help_text="1, 2, ... within its scope.")
    assertions = models.JSONField(default=list, help_text="The assertions, exactly as they were checked.")
    assertions_hash = models.CharField(max_length=64)
    note = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=8, choices=EvaluationStatus.choices, default=EvaluationStatus.PENDING)
    total = models.PositiveIntegerField(default=0)
    scored = models.PositiveIntegerField(default=0)
    passed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    # Per assertion `metric`: {"passed": n, "failed": n, "errors": n, "score_sum": x} over the scored subjects.
    metrics = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    lease_owner = models.CharField(max_length=100, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["scope", "number"], name="evaluation_number_unique")]
        indexes = [models.Index(fields=["status", "lease_expires_at"], name="evaluation_claimable")]

    def __str__(self) -> str:
        return f"Evaluation {self.number} of {self.scope}"

    @property
    def pass_rate(self) -> float | None:
        counted = self.passed + self.failed
        return self.passed / counted if counted else None


class ScoreOutcome(models.TextChoices):
    PENDING = "pending"
    JUDGING = "judging"  # its judges' runs are under way
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"


class Score(models.Model):
    """One run's outcome in one evaluation, with each assertion's result."""

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="scores", db_index=False)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="scores")
    expected = models.JSONField(null=True, blank=True, help_text="The case's expected output ({{ expected }}).")
    assertions = models.JSONField(null=True, blank=True, help_text="The case's own assertions, checked after the evaluation's.")
    outcome = models.CharField(max_length=7, choices=ScoreOutcome.choices, default=ScoreOutcome.PENDING)
    score = models.FloatField(null=True, blank=True, help_text="The weighted score, 0 to 1, errors left out.")
    reason = models.TextField(blank=True, default="", help_text="Why it failed: the first failing assertion.")
    results = models.JSONField(default=list, blank=True)
    judges = models.JSONField(default=dict, blank=True, help_text="The judges' runs, by assertion index.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["evaluation", "run"], name="score_unique")]
        # The work reads an evaluation's pending scores in id order; pages read them by outcome.
        indexes = [models.Index(fields=["evaluation", "outcome", "id"], name="score_evaluation_outcome")]

    def __str__(self) -> str:
        return f"{self.evaluation_id}: run {self.run_id} {self.outcome}"


class RunChecks(models.Model):
    """A workflow's assertions, checked on every run of it that succeeds (when enabled): each finished
    run becomes a subject of the current evaluation (scope "workflow:<id>"). Changing the assertions
    starts a new evaluation; runs before it keep the scores they had."""

    workflow = models.OneToOneField(Workflow, on_delete=models.CASCADE, related_name="run_checks")
    assertions = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    evaluation = models.ForeignKey(Evaluation, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # Runs of the workflow up to this id have been looked at (scored if they succeeded).
    last_run_id = models.BigIntegerField(default=0)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "run checks"
        verbose_name_plural = "run checks"

    def __str__(self) -> str:
        return f"Checks of {self.workflow}"


class ReviewVerdict(models.TextChoices):
    GOOD = "good"
    BAD = "bad"


class Review(models.Model):
    """A person's verdict on one run (an experiment cell's review is its run's): good or bad, with an
    optional score and comment. One per run and reviewer: reviewing again replaces it."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="reviews", db_index=False)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    verdict = models.CharField(max_length=4, choices=ReviewVerdict.choices)
    score = models.FloatField(null=True, blank=True, help_text="0 to 1, optional.")
    comment = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "reviewer"], name="review_unique"),
            models.CheckConstraint(condition=models.Q(score__isnull=True) | models.Q(score__gte=0, score__lte=1),
                                   name="review_score_range"),
        ]

    def __str__(self) -> str:
        return f"Run {self.run_id}: {self.verdict}"


class Choice(models.TextChoices):
    A = "a", "A was better"
    B = "b", "B was better"
    TIE = "tie", "Tie"


class Preference(models.Model):
    """A person's choice between two runs of the same case (a blinded A/B comparison). Stored with
    run_a the lower id, so a pair seen the other way round is the same row."""

    run_a = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+", db_index=False)
    run_b = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    choice = models.CharField(max_length=3, choices=Choice.choices)
    comment = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["run_a", "run_b", "reviewer"], name="preference_unique"),
            models.CheckConstraint(condition=models.Q(run_a__lt=models.F("run_b")), name="preference_pair_ordered"),
        ]

    def __str__(self) -> str:
        return f"Runs {self.run_a_id} / {self.run_b_id}: {self.choice}"
