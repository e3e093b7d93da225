"""`make bench-evaluations`: re-scoring 100,000 stored outputs with five deterministic assertions (issue 21).

    .venv/bin/python bench/evaluations.py                  # 100,000 outputs in a temp SQLite file
    .venv/bin/python bench/evaluations.py --outputs 10000  # while developing

Seeds runs with ~400-character outputs (bulk_create), then times `evaluations.work.evaluations_work`
scoring one evaluation of all of them (reading the outputs, checking, writing every score in
batches) on one core, the way the server does it. Reports the wall and CPU time, outputs per second
and the time per assertion, and writes bench/results/evaluations-<time>.json. Target: under 30 s.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ASSERTIONS = [
    {"type": "icontains", "value": "tide"},
    {"type": "regex", "value": r"\b(moon|sun)\b"},
    {"type": "not-contains", "value": "As an AI"},
    {"type": "word-count", "value": {"min": 20, "max": 200}},
    {"type": "levenshtein", "value": "{{ expected }}", "threshold": 400},
]
WORDS = ("tide moon sun sea wave shore salt wind current harbour boat rope sand rock foam gull light dark deep "
         "shallow north south east west cold warm").split()


def configure(path: str) -> None:
    os.environ.update({"DJANGO_SETTINGS_MODULE": "orchestrator.settings", "DATABASE_URL": f"sqlite:///{path}",
                       "DEBUG": "0", "SECRET_KEY": "bench-evaluations-not-for-production", "LOG_LEVEL": "WARNING",
                       "RUNS_BACKEND": "embedded",
                       "METRICS_ALLOWED_NETWORKS": "127.0.0.0/8"})
    os.environ.pop("TEST_DATABASE_NAME", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def seed(count: int) -> list[int]:
    from django.core.management import call_command

    from releases.models import Release
    from runs.models import Run

    call_command("migrate", verbosity=0)
    release = Release.objects.create(workflow=None, workflow_name="bench", number=1, content_hash="0" * 64,
                                     snapshot={"steps": [], "inputs": [{"name": "topic"}]})
    rng = random.Random(21)
    ids: list[int] = []
    for start in range(0, count, 5000):
        batch = [Run(workflow=None, workflow_name="bench", release=release, status="succeeded",
                     inputs={"topic": f"t{i}"}, latency_ms=rng.randint(50, 900),
                     output=" ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 90))))
                 for i in range(start, min(start + 5000, count))]
        ids += [run.pk for run in Run.objects.bulk_create(batch)]
    return ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outputs", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        configure(str(Path(folder) / "bench.sqlite3"))
        from django.db import transaction

        from evaluations.models import Evaluation
        from evaluations.services import evaluation_create
        from evaluations.work import evaluations_work

        started = time.perf_counter()
        ids = seed(args.outputs)
        seeded = time.perf_counter() - started
        rng = random.Random(7)
        with transaction.atomic():
            evaluation = evaluation_create(scope="bench", assertions=ASSERTIONS, subjects=(
                (run_id, " ".join(rng.choice(WORDS) for _ in range(40)), None) for run_id in ids))
        cpu, wall = time.process_time(), time.perf_counter()
        evaluations_work(owner="bench")
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        evaluation = Evaluation.objects.get(pk=evaluation.pk)
        assert evaluation.status == "done" and evaluation.scored == args.outputs, evaluation.status
        figures = {
            "outputs": args.outputs, "assertions_each": len(ASSERTIONS), "seconds": round(wall, 2),
            "cpu_seconds": round(cpu, 2), "outputs_per_second": round(args.outputs / wall),
            "microseconds_per_assertion": round(wall / (args.outputs * len(ASSERTIONS)) * 1e6, 2),
            "passed": evaluation.passed, "failed": evaluation.failed, "errors": evaluation.errors,
            "seeding_seconds": round(seeded, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "target_seconds": 30, "within_target": wall < 30,
        }
    print(json.dumps(figures, indent=2))
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / f"evaluations-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(figures, indent=2))
    return 0 if figures["within_target"] or args.outputs < 100_000 else 1


if __name__ == "__main__":
    raise SystemExit(main())
