from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from llm import capabilities
from llm.models import Capability, Endpoint


class StrictFieldsMixin:
    """Unknown fields are a 400, not silently ignored: a typo must not look like success."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            known = {name for name, field in self.fields.items() if not field.read_only}  # type: ignore[attr-defined]
            unknown = sorted(set(data) - known)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)  # type: ignore[misc]


@extend_schema_field({"type": "object", "additionalProperties": {"type": "string", "nullable": True}})
class WriteOnlyValuesField(serializers.Field):
    """Header names are shown, values never: read as null. Writing null keeps a stored value."""

    def to_representation(self, value: Any) -> dict[str, None]:
        return dict.fromkeys(value or {})

    def to_internal_value(self, data: Any) -> dict[str, str | None]:
        if not isinstance(data, dict) or not all(
                isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in data.items()):
            raise serializers.ValidationError(
                'Must be a JSON object of strings (or null to keep a stored value), e.g. {"X-Team": "ml"}.')
        return data


class EndpointSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    # Write-only: accepted, never returned. Blank clears the key; omitted keeps it.
    api_key = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=True,
        style={"input_type": "password"}, max_length=1000,
        help_text="Write-only. Omit to keep the stored key, send an empty string to clear it. Changing "
                  "base_url's scheme, host or port clears the key unless the same request sends one.",
    )
    has_api_key = serializers.BooleanField(read_only=True)
    extra_headers = WriteOnlyValuesField(
        required=False,
        help_text="Header values are write-only (they may hold keys): read back as null. Send null as a value "
                  "to keep the stored one. Changing the URL's host, scheme or port clears values not sent again.",
    )

    class Meta:
        model = Endpoint
        fields = [
            "id", "name", "base_url", "api_key", "has_api_key", "default_model", "timeout_seconds",
            "max_retries", "max_concurrency", "requests_per_minute", "tokens_per_minute", "extra_headers", "enabled", "is_mock", "pricing", "price_per_second",
            "price_currency", "created_at", "updated_at",
        ]
        read_only_fields = ["id", "has_api_key", "created_at", "updated_at"]


class EndpointTestRequestSerializer(StrictFieldsMixin, serializers.Serializer):
    model = serializers.CharField(required=False, allow_blank=True, max_length=200,
                                  help_text="Model to try; default: the endpoint's default model.")


class CheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    ok = serializers.BooleanField(allow_null=True)
    detail = serializers.CharField()
    latency_ms = serializers.IntegerField(allow_null=True)


class ConnectivityReportSerializer(serializers.Serializer):
    endpoint = serializers.CharField()
    base_url = serializers.CharField()
    model = serializers.CharField()
    ok = serializers.BooleanField()
    error_kind = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    checks = CheckSerializer(many=True)


CAPABILITY_FIELDS = list(capabilities.FIELDS)


class CapabilitySerializer(serializers.ModelSerializer):
    """What one model on an endpoint accepts; `overridden` names the fields a person set."""

    overridden = serializers.ListField(child=serializers.ChoiceField(choices=CAPABILITY_FIELDS), read_only=True)
    evidence = serializers.DictField(
        child=serializers.DictField(child=serializers.CharField()), read_only=True,
        help_text='Per learned field: {"said": what the server answered, "at": when}.')

    class Meta:
        model = Capability
        fields = ["model", *CAPABILITY_FIELDS, "overridden", "evidence", "learned_at", "updated_at"]
        read_only_fields = fields


def _capability_value_schema(name: str) -> dict[str, Any]:
    allowed = capabilities.FIELDS[name]
    if allowed is bool:
        return {"type": "boolean", "nullable": True}
    return {"type": "string", "enum": [*allowed, None], "nullable": True}


class CapabilityValueField(serializers.Field):
    """Passed through as given: llm.services.capability_set says what is wrong with a value, naming the field."""

    def to_internal_value(self, data: Any) -> Any:
        return data

    def to_representation(self, value: Any) -> Any:
        return value


def _value_field(name: str) -> serializers.Field:
    field_class = extend_schema_field(_capability_value_schema(name))(type(f"{name}Field", (CapabilityValueField,), {}))
    return field_class(required=False, allow_null=True,
                       help_text=f"{Capability._meta.get_field(name).help_text} null: learned again from the server.")


class CapabilitySetSerializer(StrictFieldsMixin, serializers.Serializer):
    """A person's word on what a model accepts. PATCH changes the fields sent; PUT also hands every
    field a person had set but that is not sent back to learning. null: back to learning."""

    structured_output = _value_field("structured_output")
    stream_options = _value_field("stream_options")
    stream_usage = _value_field("stream_usage")
    token_limit_param = _value_field("token_limit_param")
    temperature = _value_field("temperature")
    reasoning_field = _value_field("reasoning_field")


class CapabilityResetSerializer(serializers.Serializer):
    deleted = serializers.IntegerField(help_text="How many models' rows were forgotten.")
