"""The API's shapes for experiments; the rules (what a variant, a mapping, a budget may be) are in
experiments.services, whose ValidationErrors name the field."""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.money import from_nano
from core.serializers import RejectUnknownFieldsMixin, StrictCharField
from datasets.models import Dataset, DatasetVersion
from datasets.selectors import dataset_version
from experiments import events
from experiments.models import Experiment
from experiments.selectors import variant_scores, variant_summaries
from runs.models import CacheMode
from workflows.models import Workflow


class ProgressSerializer(serializers.Serializer):
    # Documentation of experiments.events.progress (the WebSocket's experiment.progress event).
    status = serializers.CharField()
    stop_reason = serializers.CharField(help_text="Why it stopped or is stopping: cancel, budget, or empty.")
    cells = serializers.IntegerField()
    done = serializers.IntegerField(help_text="succeeded + failed + cancelled + skipped")
    queued = serializers.IntegerField()
    running = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    skipped = serializers.IntegerField(help_text="Never started: the budget was reached first.")
    cells_per_second = serializers.FloatField()
    eta_seconds = serializers.IntegerField(allow_null=True)
    cost = serializers.CharField(help_text="As the pages show it, e.g. \"$0.12\".")
    cost_nano = serializers.IntegerField(help_text="Billionths of cost_currency.")
    cost_currency = serializers.CharField()
    unpriced = serializers.IntegerField(help_text="Finished cells whose cost is unknown (not in cost).")
    budget = serializers.CharField(allow_null=True)
    tokens = serializers.IntegerField()


class VariantSummarySerializer(serializers.Serializer):
    # Documentation of experiments.selectors.VariantSummary.as_json.
    variant = serializers.CharField(help_text="The variant's name.")
    variant_id = serializers.IntegerField()
    release_id = serializers.IntegerField()
    label = serializers.CharField(help_text="The label it was resolved from, if any.")
    cells = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    success_rate = serializers.FloatField(allow_null=True, help_text="succeeded / (succeeded + failed).")
    median_latency_ms = serializers.IntegerField(allow_null=True)
    p95_latency_ms = serializers.IntegerField(allow_null=True)
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cost = serializers.DictField(child=serializers.CharField(), help_text="Currency -> amount (decimal string).")
    unpriced_cells = serializers.IntegerField()
    cost_text = serializers.CharField()


class ExperimentSerializer(serializers.ModelSerializer):
    workflow_name = serializers.CharField(source="workflow.name", read_only=True)
    dataset = serializers.IntegerField(source="dataset_version.dataset_id", read_only=True)
    dataset_name = serializers.CharField(source="dataset_version.dataset.name", read_only=True)
    dataset_version_number = serializers.IntegerField(source="dataset_version.number", read_only=True)
    budget = serializers.SerializerMethodField(help_text="The cost cap in budget_currency (null: none).")
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Experiment
        fields = ["id", "name", "workflow", "workflow_name", "dataset", "dataset_name", "dataset_version",
                  "dataset_version_number", "status", "stop_reason", "repeats", "concurrency", "budget",
                  "budget_currency", "cache_mode", "cell_count", "progress", "created_by", "created_at", "started_at", "finished_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.DecimalField(max_digits=30, decimal_places=9, allow_null=True))
    def get_budget(self, experiment: Experiment) -> str | None:
        return None if experiment.budget_nano is None else str(from_nano(experiment.budget_nano))

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, experiment: Experiment) -> dict[str, Any]:
        event = events.progress(experiment)
        return {key: value for key, value in event.items() if key not in ("type", "experiment_id")}


class ExperimentDetailSerializer(ExperimentSerializer):
    variants = serializers.SerializerMethodField(help_text="Per variant, in order: its aggregates so far, and its "
                                                           "scores in the current evaluation (`scores`, or null).")

    class Meta(ExperimentSerializer.Meta):
        fields = [*ExperimentSerializer.Meta.fields, "mapping", "assertions", "evaluation", "variants"]
        read_only_fields = fields

    @extend_schema_field(VariantSummarySerializer(many=True))
    def get_variants(self, experiment: Experiment) -> list[dict[str, Any]]:
        scores = variant_scores(experiment)
        return [{**summary.as_json(), "scores": scores[summary.variant.pk].as_json()
                 if summary.variant.pk in scores else None} for summary in variant_summaries(experiment)]


class ReevaluateSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    assertions = serializers.JSONField(required=False, default=None, help_text=(
        "The assertions to score with; the experiment's own when left out."))


class ExperimentCreateSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    name = StrictCharField(max_length=200)
    workflow = serializers.PrimaryKeyRelatedField(queryset=Workflow.objects.all(), help_text="The workflow's id.")
    dataset = serializers.PrimaryKeyRelatedField(queryset=Dataset.objects.all(), required=False,
                                                 help_text="The dataset's id (with `version`), or give `dataset_version`.")
    version = serializers.IntegerField(required=False, min_value=1,
                                       help_text="The dataset's version number; the latest by default.")
    dataset_version = serializers.PrimaryKeyRelatedField(queryset=DatasetVersion.objects.all(), required=False,
                                                         help_text="A dataset version's id, instead of `dataset`.")
    variants = serializers.ListField(child=serializers.JSONField(), help_text=(
        'Each {"release": id}, {"label": name} or {"current": true}, with an optional "name".'))
    mapping = serializers.JSONField(required=False, default=dict, help_text=(
        'Per workflow input: "column", {"column": name} or {"value": constant}. An input not mapped takes the '
        "column of its own name, else its default."))
    repeats = serializers.IntegerField(required=False, default=1, help_text="Runs per case and variant.")
    concurrency = serializers.IntegerField(required=False, default=10, help_text="At most this many cells at once.")
    budget = serializers.DecimalField(max_digits=14, decimal_places=6, required=False, allow_null=True, default=None,
                                      help_text="Stop the experiment when its cells have cost this much.")
    budget_currency = StrictCharField(required=False, allow_null=True, allow_blank=True, default=None, max_length=3)
    cache_mode = serializers.ChoiceField(choices=CacheMode.choices, required=False, allow_null=True, default=None,
                                         help_text="Every cell's run: \"use\" the response cache for every step, "
                                                   "\"off\" for none; null: as each payload says.")
    assertions = serializers.JSONField(required=False, default=None, help_text=(
        "Assertions every succeeded cell is scored with (docs/evaluations.md), checked after each case's own."))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        dataset, version = attrs.pop("dataset", None), attrs.pop("version", None)
        if attrs.get("dataset_version") is not None:
            if dataset is not None or version is not None:
                raise serializers.ValidationError(
                    {"dataset_version": ["Give either dataset_version, or dataset (and version), not both."]})
            return attrs
        if dataset is None:
            raise serializers.ValidationError({"dataset": ["Give the dataset (and version), or dataset_version."]})
        attrs["dataset_version"] = dataset_version(dataset, version)
        if attrs["dataset_version"] is None:
            if version is not None:
                raise serializers.ValidationError({"version": [f"The dataset “{dataset}” has no version {version}."]})
            raise serializers.ValidationError({"dataset": [f"The dataset “{dataset}” has no version yet: add rows first."]})
        return attrs


class ResultCellSerializer(serializers.Serializer):
    variant_id = serializers.IntegerField()
    variant = serializers.CharField(help_text="The variant's name.")
    status = serializers.CharField()
    output = serializers.CharField(allow_null=True)
    prompt_tokens = serializers.IntegerField(allow_null=True)
    completion_tokens = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.IntegerField(allow_null=True)
    cost = serializers.DecimalField(max_digits=30, decimal_places=9, allow_null=True,
                                    help_text="In cost_currency; null when unknown or not finished.")
    cost_currency = serializers.CharField()
    cost_text = serializers.CharField()
    error = serializers.CharField()
    run_id = serializers.IntegerField(allow_null=True)
    run_url = serializers.URLField(allow_null=True, help_text="The run in the API.")


class ResultRowSerializer(serializers.Serializer):
    # Documentation of ExperimentViewSet.results' rows (built in experiments.api).
    position = serializers.IntegerField(help_text="The case's position in the dataset version (from 0).")
    row_id = serializers.IntegerField(help_text="The case's stable id.")
    repeat = serializers.IntegerField()
    inputs = serializers.DictField()
    expected = serializers.JSONField(allow_null=True)
    cells = ResultCellSerializer(many=True, help_text="One per variant, in the variants' order.")


class ResultPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ResultRowSerializer(many=True)
