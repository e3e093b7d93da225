from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.serializers import RejectUnknownFieldsMixin
from evaluations.models import Evaluation, RunChecks, Score
from evaluations.selectors import pass_rate_json


class EvaluationSerializer(serializers.ModelSerializer):
    pass_rate = serializers.SerializerMethodField(help_text="Passed / (passed + failed), errors left out, "
                                                            "with its 95 % Wilson interval.")

    class Meta:
        model = Evaluation
        fields = ["id", "scope", "number", "assertions", "assertions_hash", "note", "status", "total", "scored",
                  "passed", "failed", "errors", "pass_rate", "error", "created_at", "finished_at"]
        read_only_fields = fields

    def get_pass_rate(self, evaluation: Evaluation) -> dict[str, Any]:
        return pass_rate_json(evaluation.passed, evaluation.failed)


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
