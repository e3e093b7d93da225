"""The bulk inserts of a version's new rows and its items, as plain SQL with the fields' own value
preparation: bulk_create built a model instance per row and spent most of an upload's time doing so."""
from __future__ import annotations

from typing import Any

from django.db import connection
from django.utils import timezone

from datasets.models import DatasetItem, DatasetRow

ITEM_FIELDS = ("version", "row", "position", "inputs", "expected", "metadata", "assertions")


def rows_insert(dataset_id: int, count: int) -> list[int]:
    """`count` new stable ids of the dataset, in insertion order."""
    if count == 0:
        return []
    table = connection.ops.quote_name(DatasetRow._meta.db_table)
    created = DatasetRow._meta.get_field("created_at").get_db_prep_save(timezone.now(), connection)
    values = ", ".join(["(%s, %s)"] * count)
    with connection.cursor() as cursor:
        # Multi-row INSERT ... RETURNING gives the ids in the order of the VALUES (as bulk_create relies on).
        cursor.execute(f"INSERT INTO {table} (dataset_id, created_at) VALUES {values} RETURNING id",
                       [value for _ in range(count) for value in (dataset_id, created)])
        return [row[0] for row in cursor.fetchall()]


def items_insert(items: list[tuple[int, int, int, Any, Any, Any, Any]]) -> None:
    """Insert (version id, row id, position, inputs, expected, metadata, assertions) tuples."""
    if not items:
        return
    fields = [DatasetItem._meta.get_field(name) for name in ITEM_FIELDS]
    table = connection.ops.quote_name(DatasetItem._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    prepared = [[field.get_db_prep_save(value, connection) for field, value in zip(fields, item, strict=True)]
                for item in items]
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", prepared)
