"""Reading an uploaded CSV or JSONL file into cases, one line at a time (never the whole file).

A case is a dict: `inputs` (a JSON object of the input values), `expected` (any JSON value or None)
and `metadata` (a JSON object). Which columns are which:

- CSV: the header names the columns. The column named `expected` (or the one chosen with
  `expected_column`) holds the expected output (an empty cell is none); a `metadata` column holds a
  JSON object, and every `meta.<name>` column becomes `metadata[<name>]`; every other column is an input.
- JSONL: one JSON object per line. `expected` and `metadata` (an object) as above; the inputs are
  the `inputs` object if the line has one, else every other key.

Text is UTF-8, with or without a byte-order mark. Every problem is a ValidationError on `file`
naming the line ("line 7: 4 fields where the header has 3") or the header; the caller's transaction
makes sure nothing of a refused file is kept.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError

from core.surrogates import surrogate_path

FORMATS = ("csv", "jsonl")
EXPECTED = "expected"
ASSERT = "assert"  # a JSONL case's own assertions (promptfoo's name)
ASSERT_COLUMN = "__assert"  # a CSV case's, as a JSON list
METADATA = "metadata"
META_PREFIX = "meta."
# A line longer than this is refused rather than read into memory.
MAX_LINE_BYTES = 16 * 1024 * 1024

Case = dict[str, Any]


def _problem(message: str, field: str = "file") -> ValidationError:
    return ValidationError({field: [message]})


def contains_nul(value: Any) -> bool:
    """Whether any text or key in a JSON value holds U+0000, which PostgreSQL's jsonb cannot store."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(name) or contains_nul(item) for name, item in value.items())
    if isinstance(value, list):
        return any(contains_nul(item) for item in value)
    return False


def _text_lines(binary: IO[bytes], max_bytes: int) -> Iterator[tuple[int, str]]:
    """(line number, decoded line with its ending) of a binary file, counting the bytes read."""
    total = 0
    number = 0
    while True:
        raw = binary.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        total += len(raw)
        if total > max_bytes:
            raise _problem(f"The file is larger than {max_bytes} bytes (DATASET_UPLOAD_MAX_BYTES).")
        if len(raw) > MAX_LINE_BYTES:
            raise _problem(f"line {number}: longer than {MAX_LINE_BYTES} bytes.")
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise _problem(f"line {number}: not UTF-8 text.") from None
        if "\x00" in text:
            raise _problem(f"line {number}: contains a NUL character.")
        yield number, text


def cases_read(binary: IO[bytes], *, file_format: str, expected_column: str = "",
               max_bytes: int | None = None) -> Iterator[Case]:
    """The cases of the file, lazily; a problem raises when the reader reaches it."""
    if file_format not in FORMATS:
        raise _problem(f"“{file_format}” is not a format: use csv or jsonl.", "format")
    limit = settings.DATASET_UPLOAD_MAX_BYTES if max_bytes is None else max_bytes
    lines = _text_lines(binary, limit)
    reader = _csv_cases if file_format == "csv" else _jsonl_cases
    count = 0
    for case in reader(lines, expected_column):
        count += 1
        yield case
    if count == 0:
        raise _problem("The file has no rows.")


class _LineCounter:
    """Feeds the csv module and remembers the physical line number it last read."""

    def __init__(self, lines: Iterator[tuple[int, str]]) -> None:
        self.lines = lines
        self.number = 0

    def __iter__(self) -> _LineCounter:
        return self

    def __next__(self) -> str:
        self.number, text = next(self.lines)
        return text


def _csv_header(reader: Any, counter: _LineCounter, expected_column: str) -> tuple[list[str], str]:
    header = next((row for row in reader if row), None)
    if header is None:
        raise _problem("The file has no rows.")
    seen: set[str] = set()
    for index, name in enumerate(header, start=1):
        if not name.strip():
            raise _problem(f"header: column {index} has no name.")
        if name in seen:
            raise _problem(f"header: column “{name}” appears twice.")
        seen.add(name)
    if expected_column and expected_column not in seen:
        raise _problem(f"The header has no column “{expected_column}”.", "expected_column")
    return header, expected_column or (EXPECTED if EXPECTED in seen else "")


def _csv_case(header: list[str], record: list[str], expected: str, line: int) -> Case:
    inputs: dict[str, str] = {}
    metadata: dict[str, Any] = {}
    case: Case = {"inputs": inputs, "expected": None, "metadata": metadata}
    for name, value in zip(header, record, strict=True):
        if name == expected:
            case["expected"] = value if value != "" else None
        elif name == METADATA:
            if value:
                metadata.update(_metadata_object(value, line))
        elif name == ASSERT_COLUMN:
            if value:
                case["assert"] = _assertions(_json_value(value, line, ASSERT_COLUMN), line)
        elif name.startswith(META_PREFIX):
            metadata[name[len(META_PREFIX):]] = value
        else:
            inputs[name] = value
    return case


def _json_value(value: str, line: int, column: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        raise _problem(f"line {line}: column “{column}” is not JSON.") from None


def _metadata_object(value: str, line: int) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise _problem(f"line {line}: column “{METADATA}” is not a JSON object.")
    return parsed


def _csv_cases(lines: Iterator[tuple[int, str]], expected_column: str) -> Iterator[Case]:
    counter = _LineCounter(lines)
    reader = csv.reader(counter, strict=True)
    try:
        header, expected = _csv_header(reader, counter, expected_column)
        for record in reader:
            if not record:
                continue  # a blank line
            if len(record) != len(header):
                raise _problem(f"line {counter.number}: {len(record)} fields where the header has {len(header)}.")
            yield _csv_case(header, record, expected, counter.number)
    except csv.Error as error:
        raise _problem(f"line {counter.number}: {error}.") from None


def _jsonl_case(value: dict[str, Any], expected: str, line: int) -> Case:
    where = surrogate_path(value)
    if where:
        raise _problem(f"line {line}: {where} contains a lone surrogate, which is not valid Unicode text.")
    if contains_nul(value):
        raise _problem(f"line {line}: contains a NUL character (\\u0000).")
    metadata = value.get(METADATA, {})
    if not isinstance(metadata, dict):
        raise _problem(f"line {line}: “{METADATA}” is not a JSON object.")
    rest = {name: item for name, item in value.items() if name not in (expected, METADATA, ASSERT)}
    inputs = rest["inputs"] if set(rest) == {"inputs"} and isinstance(rest["inputs"], dict) else rest
    if not inputs:
        raise _problem(f"line {line}: no inputs.")
    case: Case = {"inputs": inputs, "expected": value.get(expected), "metadata": metadata}
    if value.get(ASSERT):
        case["assert"] = _assertions(value[ASSERT], line)
    return case


def _assertions(specs: Any, line: int) -> list[Any]:
    from datasets.services import assertion_problems  # the service checks cases given any way

    problems = assertion_problems(specs, ASSERT)
    if problems:
        raise _problem(f"line {line}: {problems[0]}")
    return specs


def _jsonl_cases(lines: Iterator[tuple[int, str]], expected_column: str) -> Iterator[Case]:
    expected = expected_column or EXPECTED
    for number, text in lines:
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except ValueError as error:
            raise _problem(f"line {number}: not valid JSON ({error.args[0].split(':')[0]}).") from None
        except RecursionError:
            raise _problem(f"line {number}: nested too deeply.") from None
        if not isinstance(value, dict):
            raise _problem(f"line {number}: not a JSON object.")
        yield _jsonl_case(value, expected, number)
