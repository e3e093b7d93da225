from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.money import from_nano
from core.serializers import FieldsBuiltOnceMixin, StrictCharField
from releases.serializers import ReleaseRefSerializer
from runs.costs import cost_of_steps, run_costs
from runs.models import CacheMode, Response, Run
from runs.selectors import run_release_brief


class CostSerializer(serializers.Serializer):
    """A total that never adds two currencies nor counts an unknown cost as zero."""

    amounts = serializers.DictField(child=serializers.DecimalField(max_digits=30, decimal_places=9),
                                    help_text="Currency -> exact amount, e.g. {\"USD\": \"0.012345000\"}.")
    unpriced_steps = serializers.IntegerField(help_text="Steps whose cost is unknown (not in any amount).")
    estimated = serializers.BooleanField(help_text="Some cost was computed from tokens counted locally.")
    text = serializers.CharField(help_text="As the pages show it: \"$4.12 + 37 steps unpriced\".")


def _money(nano: int | None) -> str | None:
    return None if nano is None else str(from_nano(nano))


class ResponseSerializer(FieldsBuiltOnceMixin, serializers.ModelSerializer):
    attempt_count = serializers.IntegerField(read_only=True)
    cost = serializers.SerializerMethodField(help_text="What the step cost in cost_currency (a decimal string); "
                                                      "null when unknown (cost_note says why), never 0 for unknown.")
    cost_estimated = serializers.BooleanField(read_only=True, help_text="Computed from tokens counted locally.")
    cache_saved_cost = serializers.SerializerMethodField(
        help_text="A cache hit: what the answer would have cost at this step's price, in cache_saved_cost_currency "
                  "(the step itself cost 0, and its latency_ms is the lookup's).")
    # Stored compressed (core/fields.py); shown as what they are.
    messages = serializers.JSONField(read_only=True, help_text="The messages sent: [{role, content}, ...].")
    output = serializers.CharField(read_only=True)
    item = serializers.IntegerField(read_only=True, help_text="0: the step itself; n >= 1: the n-th item of a step "
                                                              "that maps over a list (for_each).")
    item_value = serializers.JSONField(read_only=True, allow_null=True, help_text="The list item of this call.")

    class Meta:
        model = Response
        fields = [
            "id", "index", "item", "item_value", "output_key", "payload_name", "endpoint_name", "model", "messages", "request_params",
            "output", "output_json", "reasoning", "finish_reason", "prompt_tokens", "completion_tokens",
            "tokens_estimated", "reasoning_tokens", "cached_tokens", "latency_ms", "ttft_ms", "attempts", "attempt_count", "status", "error", "copied_from",
            "cost", "cost_currency", "cost_source", "cost_estimated", "price_id", "price_version", "cost_note",
            "cache_status", "cache_saved_prompt_tokens", "cache_saved_completion_tokens", "cache_saved_cost",
            "cache_saved_cost_currency", "cache_saved_latency_ms", "cache_stored_at", "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.DecimalField(max_digits=30, decimal_places=9, allow_null=True))
    def get_cost(self, response: Response) -> str | None:
        return _money(response.cost_nano)

    @extend_schema_field(serializers.DecimalField(max_digits=30, decimal_places=9, allow_null=True))
    def get_cache_saved_cost(self, response: Response) -> str | None:
        return _money(response.cache_saved_cost_nano)


class RunListListSerializer(serializers.ListSerializer):
    """A page of runs: their costs with one grouped query for the whole page."""

    def to_representation(self, data):  # type: ignore[no-untyped-def]
        runs = list(data.all() if hasattr(data, "all") else data)
        # On the runs themselves: FieldsBuiltOnceMixin's fields never read the serializer's context.
        costs = run_costs(run.pk for run in runs)
        for run in runs:
            run.cost_total = costs[run.pk]  # type: ignore[attr-defined]
        return super().to_representation(runs)


class VersionRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True, allow_null=True, help_text="The version's id (null if unknown).")
    number = serializers.IntegerField(read_only=True, allow_null=True)


class BlockVersionRefSerializer(VersionRefSerializer):
    block_id = serializers.IntegerField(read_only=True, help_text="The block (it may since have been deleted).")


class RunListSerializer(FieldsBuiltOnceMixin, serializers.ModelSerializer):
    total_tokens = serializers.IntegerField(read_only=True)
    release = ReleaseRefSerializer(read_only=True, allow_null=True,
                                   help_text="The release (the whole tree, content-hashed) the run ran.")
    cost = serializers.SerializerMethodField(help_text="What the run's steps cost, per currency, and how many are unpriced.")
    budget = serializers.SerializerMethodField(help_text="The run's cost cap in budget_currency (null: none).")

    class Meta:
        model = Run
        list_serializer_class = RunListListSerializer
        fields = [
            "id", "workflow", "workflow_name", "status", "inputs", "output", "output_json", "error",
            "step_count", "next_step", "prompt_tokens", "completion_tokens", "total_tokens", "latency_ms",
            "cost", "budget", "budget_currency", "cache_mode",
            "created_by", "created_at", "started_at", "finished_at", "source_run", "replay_from_step",
            "cancel_requested", "release", "label",
        ]
        read_only_fields = fields

    @extend_schema_field(CostSerializer)
    def get_cost(self, run: Run) -> dict:
        total = getattr(run, "cost_total", None)
        if total is not None:
            return total.as_json()
        if "responses" in getattr(run, "_prefetched_objects_cache", {}):
            return cost_of_steps(run.responses.all()).as_json()
        return run_costs([run.pk])[run.pk].as_json()

    @extend_schema_field(serializers.DecimalField(max_digits=30, decimal_places=9, allow_null=True))
    def get_budget(self, run: Run) -> str | None:
        return _money(run.budget_nano)


class RunStepSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    output_key = serializers.CharField()
    payload = serializers.CharField()
    stream = serializers.BooleanField()
    needs = serializers.ListField(child=serializers.IntegerField(), help_text="Indexes of the steps it waited for.")
    when = serializers.CharField(help_text="Its condition; empty: always runs.")
    for_each = serializers.CharField(help_text="The list it mapped over; empty: one call.")
    payload_version = VersionRefSerializer(allow_null=True, help_text="The payload version the step used.")
    block_versions = BlockVersionRefSerializer(many=True, help_text="The block versions the step used, in order.")


def _step_versions(release_steps: list[dict], index: int, output_key: str) -> dict:
    """The versions a step used, from its release's steps (by index, checked on the output key)."""
    used = release_steps[index] if index < len(release_steps) else None
    if used is None or used.get("output_key") != output_key:
        return {"payload_version": None, "block_versions": []}
    payload = ({"id": used["payload_version_id"], "number": used["payload_version"]}
               if used.get("payload_version_id") else None)
    return {"payload_version": payload,
            "block_versions": [{"block_id": b["block_id"], "id": b["block_version_id"], "number": b["block_version"]}
                               for b in used.get("blocks", [])]}


def _needs(step: dict) -> list[int]:
    # Snapshots from before issue 22 name no needs: each step waited for the one above it.
    needs = step.get("needs")
    return needs if needs is not None else ([step["index"] - 1] if step["index"] else [])


class RunSerializer(RunListSerializer):
    release = serializers.SerializerMethodField(help_text="The release (the whole tree, content-hashed) the run ran.")
    steps = serializers.SerializerMethodField(help_text="The run's steps as the workflow was when it started, "
                                                        "with the payload and block versions each used.")
    responses = ResponseSerializer(many=True, read_only=True)

    class Meta(RunListSerializer.Meta):
        fields = [*RunListSerializer.Meta.fields, "steps", "responses"]
        read_only_fields = fields

    @extend_schema_field(ReleaseRefSerializer(allow_null=True))
    def get_release(self, run: Run) -> dict | None:
        brief = run_release_brief(run)
        return None if brief is None else {"id": brief["id"], "number": brief["number"]}

    @extend_schema_field(RunStepSerializer(many=True))
    def get_steps(self, run: Run) -> list[dict]:
        brief = run_release_brief(run)
        release_steps = brief["steps"] if brief else []
        return [
            {"index": step["index"], "output_key": step["output_key"], "payload": step["payload"]["name"],
             "stream": step["payload"]["stream"], "needs": _needs(step), "when": step.get("when", ""),
             "for_each": step.get("for_each", ""), **_step_versions(release_steps, step["index"], step["output_key"])}
            for step in (run.snapshot or {}).get("steps", [])
        ]


class RunStartSerializer(serializers.Serializer):
    inputs = serializers.DictField(required=False, default=dict, help_text="Values of the workflow's declared inputs.")
    label = StrictCharField(required=False, allow_blank=True, default="", max_length=200,
                            help_text="Run the release this label (production, staging, ...) points at, "
                                      "rather than the tree as it stands.")
    budget = serializers.DecimalField(max_digits=14, decimal_places=6, required=False, allow_null=True,
                                      min_value=0, help_text="Cost cap: no step starts whose worst case (its max_tokens "
                                                             "at the output price) would pass it. Left out: the "
                                                             "workflow's default; null: no cap.")
    budget_currency = StrictCharField(required=False, allow_null=True, default=None, max_length=3,
                                      help_text="The cap's currency (default: the workflow's, USD).")
    cache_mode = serializers.ChoiceField(choices=CacheMode.choices, required=False, allow_null=True, default=None,
                                         help_text="The response cache: \"use\" for every step, \"off\" for none "
                                                   "(wins over the payloads); null: as each payload says.")

    def validate(self, attrs: dict) -> dict:
        unknown = set(self.initial_data) - set(self.fields) if isinstance(self.initial_data, dict) else set()
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in sorted(unknown)})
        return attrs


class RunRerunSerializer(RunStartSerializer):
    inputs = serializers.DictField(required=False, help_text="Inputs to change; the rest are the source run's.")
    label = None  # a re-run runs its source's tree
    budget = None  # and keeps its source's cap
    budget_currency = None
    cache_mode = None  # nor its use of the cache
    from_step = serializers.IntegerField(required=False, default=0, min_value=0,
                                         help_text="Index of the first step to run again; earlier steps are copied.")
