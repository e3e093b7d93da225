"""The results matrix as CSV or JSONL, one line per case and repeat, generated as it is read (the
page, the API and `manage.py export_experiment` stream it: memory stays flat at any size)."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from core.money import from_nano
from experiments.models import Experiment
from experiments.selectors import ResultRow, results_stream

FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
CELL_COLUMNS = ("status", "output", "prompt_tokens", "completion_tokens", "latency_ms", "cost", "currency", "run_id",
                "error")


def _cell(cell: dict[str, Any] | None) -> dict[str, Any]:
    if cell is None:
        return dict.fromkeys(CELL_COLUMNS)
    return {"status": cell["status"], "output": cell["run__output"], "prompt_tokens": cell["prompt_tokens"],
            "completion_tokens": cell["completion_tokens"], "latency_ms": cell["latency_ms"],
            "cost": str(from_nano(cell["cost_nano"])) if cell["cost_nano"] is not None else None,
            "currency": cell["cost_currency"] or None, "run_id": cell["run_id"], "error": cell["error"] or None}


def _record(row: ResultRow, variants: list[tuple[int, str]]) -> dict[str, Any]:
    return {"position": row.position, "row_id": row.row_id, "repeat": row.repeat, "inputs": row.inputs,
            "expected": row.expected, "variants": {name: _cell(row.cells.get(pk)) for pk, name in variants}}


def export_lines(experiment: Experiment, fmt: str) -> Iterator[bytes]:
    """The matrix in `fmt` ("csv": a column per input, then per variant and figure; "jsonl": an
    object per line), as UTF-8 chunks."""
    variants = list(experiment.variants.order_by("position").values_list("pk", "name"))
    rows = results_stream(experiment)
    if fmt == "jsonl":
        for row in rows:
            yield (json.dumps(_record(row, variants), ensure_ascii=False) + "\n").encode()
        return
    columns = list(experiment.dataset_version.columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["position", "row_id", "repeat", *columns, "expected",
                     *[f"{name}.{column}" for _, name in variants for column in CELL_COLUMNS]])
    for count, row in enumerate(rows, 1):
        record = _record(row, variants)
        expected = row.expected if isinstance(row.expected, str) or row.expected is None else json.dumps(row.expected)
        writer.writerow([row.position, row.row_id, row.repeat, *[_text(row.inputs.get(c)) for c in columns], expected,
                         *[record["variants"][name][column] for _, name in variants for column in CELL_COLUMNS]])
        if count % 200 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _text(value: Any) -> Any:
    return value if value is None or isinstance(value, str | int | float) else json.dumps(value, ensure_ascii=False)
