"""Serializer bases of every app: strict write serializers, and read-only ones built once per class.

Strict: a field the serializer does not know is a 400 (RejectUnknownFieldsMixin), and so is a
number or boolean where text is expected (StrictCharField); StrictModelSerializer has both.

Built once: read-only serializers whose fields are built once per class instead of once per instance.

DRF builds a ModelSerializer's fields from the model each time one is made, which costs more
than the representation itself (docs/performance.md has the figure), paid by every run start over
the API and every live page that connects. Here each class builds its fields once,
on a template instance, and represents objects with those fields: the same fields and the same
`get_attribute` and `to_representation` as DRF's own loop (tests/core/test_serializers.py
compares the two). Only for read-only serializers whose fields need no request context.
"""
from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from django.http import QueryDict
from rest_framework import serializers
from rest_framework.fields import SkipField
from rest_framework.relations import PKOnlyObject

from core.internals.drf_fields import readable_fields


class FieldsBuiltOnceMixin:
    _readable_by_class: ClassVar[dict[type, list[serializers.Field]]] = {}

    @classmethod
    def _template_fields(cls) -> list[serializers.Field]:
        fields = FieldsBuiltOnceMixin._readable_by_class.get(cls)
        if fields is None:
            # Bound to a template with no context: representing a value never reads the parent's state.
            fields = FieldsBuiltOnceMixin._readable_by_class[cls] = readable_fields(cls())  # type: ignore[arg-type]
        return fields

    def to_representation(self, instance: Any) -> dict[str, Any]:
        representation: dict[str, Any] = {}
        for field in self._template_fields():
            try:
                attribute = field.get_attribute(instance)
            except SkipField:
                continue
            none = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
            representation[field.field_name] = None if none is None else field.to_representation(attribute)
        return representation


# (Comments, not docstrings, on these bases: drf-spectacular would show them as every subclass's description.)

class RejectUnknownFieldsMixin:
    # A typo'd field is a 400 instead of silently ignored. Works nested too: a ListSerializer
    # runs its child's to_internal_value for each item.

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields)  # type: ignore[attr-defined]
            if isinstance(data, QueryDict):
                # A form-encoded body (the browsable API's HTML form) carries Django's CSRF token.
                unknown.discard("csrfmiddlewaretoken")
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in sorted(unknown)})
        return super().to_internal_value(data)  # type: ignore[misc]


class StrictCharField(serializers.CharField):
    # Refuses numbers and booleans instead of turning them into text.

    default_error_messages = {"not_a_string": "Must be a string, not {kind}."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string", kind=type(data).__name__)
        return super().to_internal_value(data)


class StrictModelSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    # For our write APIs: unknown fields and non-string text are 400s.

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
    }


class NamedRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
