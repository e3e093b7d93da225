from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from llm.models import Endpoint


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
            "max_retries", "max_concurrency", "extra_headers", "enabled", "is_mock", "created_at", "updated_at",
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
