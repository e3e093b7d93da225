"""Model fields that store large, repetitive text compressed: a step's prompt messages and output.

A million runs of one workflow repeat the same system prompt a million times; zlib keeps about a
third of it. Values under COMPRESS_FROM bytes are stored as they are (compressing them costs more
than it saves), behind a one-byte marker, so reading never guesses. Stored as BLOB/bytea: the
database cannot search inside these columns (runs.search indexes the run's own text instead).
"""
from __future__ import annotations

import json
import zlib
from typing import Any

from django.db import models

COMPRESS_FROM = 512
RAW, ZLIB = b"r", b"z"
LEVEL = 6


def pack(data: bytes) -> bytes:
    return ZLIB + zlib.compress(data, LEVEL) if len(data) >= COMPRESS_FROM else RAW + data


def unpack(stored: bytes | memoryview) -> bytes:
    stored = bytes(stored)
    return zlib.decompress(stored[1:]) if stored[:1] == ZLIB else stored[1:]


class _Compressed(models.Field):
    """Stored in the column type of a BinaryField (BLOB, bytea); read and written as the value."""

    def get_internal_type(self) -> str:
        return "BinaryField"

    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> Any:
        raise NotImplementedError

    def get_prep_value(self, value: Any) -> Any:
        return None if value is None else pack(self.encode(value))

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if not prepared:
            value = self.get_prep_value(value)
        return None if value is None else connection.Database.Binary(value)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return None if value is None else self.decode(unpack(value))

    def to_python(self, value: Any) -> Any:
        return self.decode(unpack(value)) if isinstance(value, (bytes, memoryview)) else value

    def value_to_string(self, obj: models.Model) -> str:
        return json.dumps(self.value_from_object(obj), ensure_ascii=False)


class CompressedJSONField(_Compressed):
    """A JSON value (list, dict, ...) stored compressed."""

    def encode(self, value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()

    def decode(self, data: bytes) -> Any:
        return json.loads(data)


class CompressedTextField(_Compressed):
    """Text stored compressed."""

    def encode(self, value: Any) -> bytes:
        return str(value).encode()

    def decode(self, data: bytes) -> str:
        return data.decode()

    def value_to_string(self, obj: models.Model) -> str:
        return self.value_from_object(obj)
