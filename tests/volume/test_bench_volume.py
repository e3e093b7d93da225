"""`make bench-volume` at a tiny size: it seeds, measures every row of its table and reports the size on disk."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The rows of issue 18's table, plus the first pages, lookups by id and /healthz.
EXPECTED_ROWS = [
    "GET /api/runs/?workflow=<busiest>", "GET /api/runs/?status=failed", "GET /api/runs/?date=YYYY-MM-DD",
    "GET /api/runs/?search=word", "GET /api/runs/?ordering=-latency_ms", "/runs/?workflow=..&status=failed (page)",
    "/runs/?q=word", "run statistics of the busiest workflow", "admin runs list", "admin runs search",
    "GET /api/workflows/", "GET /api/workflows/<busiest>/releases/", "GET /api/runs/ (first page)",
    "/runs/ (first page)", "GET /api/runs/<id>/", "/runs/<id>/", "/healthz",
]
# A route that may not exist yet: the bench skips it when it answers 404.
OPTIONAL_ROWS = {"GET /api/workflows/<busiest>/releases/"}


def test_bench_volume_measures_every_request_with_status_200_and_reports_bytes_per_run(tmp_path):
    out = tmp_path / "volume.json"
    # Always a temp SQLite file: the test's own settings (DEBUG, test database, PostgreSQL) stay out of the child.
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DEBUG", "TEST_DATABASE_NAME"}}
    finished = subprocess.run([sys.executable, "bench/volume.py", "--runs", "300", "--reps", "1", "--out", str(out)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]

    result = json.loads(out.read_text())
    rows = {row["request"]: row for row in result["rows"]}
    assert list(rows) == EXPECTED_ROWS
    for label, row in rows.items():
        if "skipped" in row:
            assert label in OPTIONAL_ROWS and row["status"] == [404], row
            continue
        assert row["status"] == [200], row
        assert row["queries"] >= 1 and row["median_ms"] > 0, row
    assert result["disk"]["runs"] == 300
    assert result["disk"]["bytes_per_run"] > 0
    assert 2.5 < result["seeding"]["responses_per_run"] < 3.2
    assert "bytes on disk per run:" in finished.stdout
    assert "| `admin runs search` |" in finished.stdout
