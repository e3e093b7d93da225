"""Distributed mode: `manage.py run_experiment` queues the experiment's driver job and follows its
progress in the database while Procrastinate workers run the cells."""
from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from experiments.models import Cell
from runs.models import Run
from tests.experiments.conftest import make_dataset_version, make_two_releases

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def test_run_experiment_follows_workers_to_the_end(fake_llm, start_worker) -> None:  # type: ignore[no-untyped-def]
    workflow, first, second = make_two_releases(fake_llm.base_url)
    make_dataset_version(4)
    start_worker(concurrency=10)
    out = io.StringIO()
    call_command("run_experiment", "--workflow", workflow.name, "--dataset", "topics", "--variant",
                 f"release:{first.pk}", "--variant", f"release:{second.pk}", "--concurrency", "4", "--json",
                 stdout=out, stderr=io.StringIO())
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    summary = lines[-1]
    assert (summary["type"], summary["status"], summary["succeeded"], summary["failed"]) == (
        "experiment.summary", "finished", 8, 0)
    assert all(line["type"] == "experiment.progress" for line in lines[:-1])
    assert Run.objects.count() == Cell.objects.filter(status="succeeded").count() == 8
    assert fake_llm.stats()["chat_requests"] == 8
