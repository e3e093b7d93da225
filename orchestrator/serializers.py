"""Read-only serializers whose fields are built once per class instead of once per instance.

DRF builds a ModelSerializer's fields from the model each time one is made, which costs more
than the representation itself: about 1.3 ms for a run with its responses, paid by every run
start over the API and every live page that connects. Here each class builds its fields once,
on a template instance, and represents objects with those fields: the same fields and the same
`get_attribute` and `to_representation` as DRF's own loop (tests/orchestrator/test_serializers.py
compares the two). Only for read-only serializers whose fields need no request context.
"""
from __future__ import annotations

from typing import Any, ClassVar

from rest_framework import serializers
from rest_framework.fields import SkipField
from rest_framework.relations import PKOnlyObject


class FieldsBuiltOnceMixin:
    _readable_by_class: ClassVar[dict[type, list[serializers.Field]]] = {}

    @classmethod
    def _template_fields(cls) -> list[serializers.Field]:
        fields = FieldsBuiltOnceMixin._readable_by_class.get(cls)
        if fields is None:
            # Bound to a template with no context: representing a value never reads the parent's state.
            fields = FieldsBuiltOnceMixin._readable_by_class[cls] = list(cls()._readable_fields)  # type: ignore[attr-defined]
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
