"""The API's shape of the price book. Decimals are strings (exact); ties and bad patterns are told by
prices.services, by field, and reach the client as a 400 through core.exceptions."""
from __future__ import annotations

from rest_framework import serializers

from core.serializers import RejectUnknownFieldsMixin, StrictCharField, StrictModelSerializer
from llm.models import Endpoint
from prices.book import COST_SOURCES
from prices.models import Price


class PriceSerializer(StrictModelSerializer):
    endpoint_name = serializers.CharField(source="endpoint.name", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Price
        fields = ["id", "model", "match", "endpoint", "endpoint_name", "effective_from", "input_per_million",
                  "output_per_million", "cached_input_per_million", "reasoning_per_million", "currency", "note",
                  "version", "created_at", "updated_at"]
        read_only_fields = ["id", "version", "created_at", "updated_at"]
        # Ties are prices.services' to tell, on the "model" field; DRF would tell the exact half nameless.
        validators: list[object] = []


class ResolveQuerySerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    endpoint = serializers.PrimaryKeyRelatedField(queryset=Endpoint.objects.all(), required=False, allow_null=True,
                                                  help_text="The endpoint's id; omitted: the entries for every endpoint only.")
    model = StrictCharField(max_length=200, help_text="The model name as sent to the server.")
    at = serializers.DateTimeField(required=False, help_text="The step's moment (ISO 8601); default: now.")


class CandidateSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="price.id")
    version = serializers.IntegerField(source="price.version")
    model = serializers.CharField(source="price.model")
    match = serializers.CharField(source="price.match")
    endpoint = serializers.IntegerField(source="price.endpoint_id", allow_null=True)
    effective_from = serializers.DateTimeField(source="price.effective_from")
    tier = serializers.CharField(help_text="How specific: this endpoint or every endpoint, exact name or pattern.")
    in_effect = serializers.BooleanField(help_text="False: its effective_from is after the moment asked about.")


class ResolveSerializer(serializers.Serializer):
    """The rate a step would pay (prices.book.Rate) and every entry that matched, most specific first."""

    source = serializers.ChoiceField(choices=COST_SOURCES, source="rate.source",
                                     help_text="computed (from an entry or a per-second price), free, or unknown.")
    currency = serializers.CharField(source="rate.currency")
    price_id = serializers.IntegerField(source="rate.price_id", allow_null=True)
    price_version = serializers.IntegerField(source="rate.price_version", allow_null=True)
    input_per_million = serializers.DecimalField(14, 6, source="rate.input", allow_null=True)
    output_per_million = serializers.DecimalField(14, 6, source="rate.output", allow_null=True)
    cached_input_per_million = serializers.DecimalField(14, 6, source="rate.cached", allow_null=True)
    reasoning_per_million = serializers.DecimalField(14, 6, source="rate.reasoning", allow_null=True)
    per_second = serializers.DecimalField(14, 6, source="rate.per_second", allow_null=True)
    basis = serializers.CharField(source="rate.basis", help_text="Which entry or endpoint setting it came from; "
                                                                 "when unknown, why (no entry, or a tie).")
    candidates = CandidateSerializer(many=True)
