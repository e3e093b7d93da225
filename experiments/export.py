"""The results matrix as CSV or JSONL, one line per case and repeat, generated as it is read (the
page, the API and `manage.py export_experiment` stream it: memory stays flat at any size). Each cell
carries its outcome and score in the experiment's current evaluation, read a chunk of rows at a time."""
from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterable, Iterator
from typing import Any

from core.money import from_nano
from experiments.models import Experiment
from experiments.selectors import ResultRow, cell_marks, results_stream

FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
CELL_COLUMNS = ("status", "output", "prompt_tokens", "completion_tokens", "latency_ms", "cost", "currency", "run_id",
                "error", "outcome", "score")
ROWS_PER_CHUNK = 200


def _cell(cell: dict[str, Any] | None, marks: dict[int, dict[str, Any]]) -> dict[str, Any]:
    if cell is None:
        return dict.fromkeys(CELL_COLUMNS)
    mark = marks.get(cell["run_id"]) or {}
    return {"outcome": mark.get("outcome"), "score": mark.get("score"), "status": cell["status"], "output": cell["run__output"], "prompt_tokens": cell["prompt_tokens"],
            "completion_tokens": cell["completion_tokens"], "latency_ms": cell["latency_ms"],
            "cost": str(from_nano(cell["cost_nano"])) if cell["cost_nano"] is not None else None,
            "currency": cell["cost_currency"] or None, "run_id": cell["run_id"], "error": cell["error"] or None}


def _record(row: ResultRow, variants: list[tuple[int, str]], marks: dict[int, dict[str, Any]]) -> dict[str, Any]:
    return {"position": row.position, "row_id": row.row_id, "repeat": row.repeat, "inputs": row.inputs,
            "expected": row.expected, "variants": {name: _cell(row.cells.get(pk), marks) for pk, name in variants}}


def _marked_chunks(experiment: Experiment) -> Iterator[tuple[list[ResultRow], dict[int, dict[str, Any]]]]:
    """The rows a chunk at a time, each chunk with its cells' marks (one query per chunk)."""
    rows: Iterable[ResultRow] = results_stream(experiment)
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, ROWS_PER_CHUNK)):
        run_ids = [cell["run_id"] for row in chunk for cell in row.cells.values() if cell["run_id"]]
        yield chunk, cell_marks(experiment, run_ids)


def export_lines(experiment: Experiment, fmt: str) -> Iterator[bytes]:
    """The matrix in `fmt` ("csv": a column per input, then per variant and figure; "jsonl": an
    object per line), as UTF-8 chunks."""
    variants = list(experiment.variants.order_by("position").values_list("pk", "name"))
    if fmt == "jsonl":
        for chunk, marks in _marked_chunks(experiment):
            yield "".join(json.dumps(_record(row, variants, marks), ensure_ascii=False) + "\n" for row in chunk).encode()
        return
    columns = list(experiment.dataset_version.columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["position", "row_id", "repeat", *columns, "expected",
                     *[f"{name}.{column}" for _, name in variants for column in CELL_COLUMNS]])
    for chunk, marks in _marked_chunks(experiment):
        for row in chunk:
            record = _record(row, variants, marks)
            expected = row.expected if isinstance(row.expected, str) or row.expected is None else json.dumps(row.expected)
            writer.writerow([row.position, row.row_id, row.repeat, *[_text(row.inputs.get(c)) for c in columns],
                             expected, *[record["variants"][name][column] for _, name in variants
                                         for column in CELL_COLUMNS]])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue().encode()


def _text(value: Any) -> Any:
    return value if value is None or isinstance(value, str | int | float) else json.dumps(value, ensure_ascii=False)
