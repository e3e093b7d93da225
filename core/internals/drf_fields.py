"""The fields a DRF serializer represents, in order.

Checked against djangorestframework 3.18.3: `Serializer._readable_fields` yields the serializer's
fields that are not write_only, and Serializer.to_representation() loops over exactly these.
"""
from __future__ import annotations

from rest_framework import serializers


def readable_fields(serializer: serializers.Serializer) -> list[serializers.Field]:
    """The bound fields `serializer.to_representation()` reads, in its order."""
    return list(serializer._readable_fields)
