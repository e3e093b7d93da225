from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.serializers import RejectUnknownFieldsMixin, StrictCharField
from evaluations.models import Choice, Evaluation, Preference, Review, ReviewVerdict, RunChecks, Score
from evaluations.selectors import pass_rate_json


class EvaluationSerializer(serializers.ModelSerializer):
    pass_rate = serializers.SerializerMethodField(help_text="Passed / (passed + failed), errors left out, "
                                                            "with its 95 % Wilson interval.")

    class Meta:
        model = Evaluation
        fields = ["id", "scope", "number", "assertions", "assertions_hash", "note", "status", "total", "scored",
                  "passed", "failed", "errors", "pass_rate", "metrics", "error", "created_at", "finished_at"]
        read_only_fields = fields

    def get_pass_rate(self, evaluation: Evaluation) -> dict[str, Any]:
        return pass_rate_json(evaluation.passed, evaluation.failed)

    def to_representation(self, instance: Evaluation) -> dict[str, Any]:
        data = super().to_representation(instance)
        # Each metric's counts with its pass rate, interval and mean score (errors left out).
        data["metrics"] = {name: {**counts, **pass_rate_json(int(counts["passed"]), int(counts["failed"])),
                                  "mean_score": counts["score_sum"] / (counts["passed"] + counts["failed"])
                                  if counts["passed"] + counts["failed"] else None}
                           for name, counts in sorted((instance.metrics or {}).items())}
        return data


class ScoreSerializer(serializers.ModelSerializer):
    class Meta:
        model = Score
        fields = ["id", "evaluation", "run", "outcome", "score", "reason", "results", "expected", "assertions",
                  "judges"]
        read_only_fields = fields


class RunChecksSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    workflow = serializers.IntegerField(source="workflow_id", read_only=True)
    assertions = serializers.JSONField(help_text="Assertions (evaluations.checks) checked on every succeeded run.")

    class Meta:
        model = RunChecks
        fields = ["workflow", "assertions", "enabled", "evaluation", "last_run_id", "updated_at"]
        read_only_fields = ["workflow", "evaluation", "last_run_id", "updated_at"]


class ReviewSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.get_username", read_only=True)

    class Meta:
        model = Review
        fields = ["id", "run", "reviewer", "verdict", "score", "comment", "created_at", "updated_at"]
        read_only_fields = fields


class ReviewWriteSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """Your review of a run; sending it again replaces it. Ranges and choices are the service's to refuse."""

    run = serializers.IntegerField(help_text="The run (an experiment cell's run) reviewed.")
    verdict = StrictCharField(help_text=f"One of {', '.join(ReviewVerdict.values)}.")
    score = serializers.FloatField(required=False, allow_null=True, help_text="0 to 1, optional.")
    comment = StrictCharField(required=False, allow_blank=True, default="", trim_whitespace=False)


class PreferenceSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.get_username", read_only=True)

    class Meta:
        model = Preference
        fields = ["id", "run_a", "run_b", "reviewer", "choice", "comment", "created_at", "updated_at"]
        read_only_fields = fields


class PreferenceWriteSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """Your choice between two runs of the same case; stored with run_a the lower id (the choice follows)."""

    run_a = serializers.IntegerField()
    run_b = serializers.IntegerField()
    choice = StrictCharField(help_text=f"One of {', '.join(Choice.values)}: which run was better, or a tie.")
    comment = StrictCharField(required=False, allow_blank=True, default="", trim_whitespace=False)
