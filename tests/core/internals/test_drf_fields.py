"""readable_fields() are the fields DRF's own to_representation() reads, in its order."""
from rest_framework import serializers

from core.internals.drf_fields import readable_fields


class _Greeting(serializers.Serializer):
    name = serializers.CharField()
    secret = serializers.CharField(write_only=True)
    shout = serializers.SerializerMethodField()

    def get_shout(self, value: dict[str, str]) -> str:
        return value["name"].upper()


def test_readable_fields_are_the_bound_fields_that_are_not_write_only() -> None:
    serializer = _Greeting()
    fields = readable_fields(serializer)
    assert [field.field_name for field in fields] == ["name", "shout"]
    assert all(field.parent is serializer for field in fields)


def test_representing_with_readable_fields_gives_what_drf_gives() -> None:
    value = {"name": "ada", "secret": "pw"}
    serializer = _Greeting(value)
    by_hand = {field.field_name: field.to_representation(field.get_attribute(value))
               for field in readable_fields(serializer)}
    assert by_hand == serializer.data == {"name": "ada", "shout": "ADA"}
