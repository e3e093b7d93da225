"""Pruning old runs keeps the runs of experiments' cells unless asked; asked, the cells keep their figures."""
import datetime

import pytest
from django.core.management import call_command
from django.utils import timezone

from experiments.models import Cell
from runs.models import Run, RunStatus
from runs.retention import runs_prune
from tests.experiments.conftest import make_dataset_version, make_two_releases, start_experiment
from tests.factories import make_run

pytestmark = pytest.mark.django_db
OLD = datetime.timedelta(days=100)


def test_cell_runs_are_kept_unless_the_prune_includes_them():
    workflow, first, _ = make_two_releases("http://127.0.0.1:9/v1")
    experiment = start_experiment(workflow, make_dataset_version(2), [first])
    cells = list(Cell.objects.filter(experiment=experiment).order_by("position"))
    for cell in cells:
        run = make_run(workflow=workflow, workflow_name=workflow.name, status=RunStatus.SUCCEEDED, release=first)
        Cell.objects.filter(pk=cell.pk).update(run=run, status="succeeded", latency_ms=42)
    loose = make_run(workflow=workflow, workflow_name=workflow.name, status=RunStatus.SUCCEEDED, release=first)
    Run.objects.update(created_at=timezone.now() - OLD)

    report = runs_prune(older_than=datetime.timedelta(days=30), reclaim=False, pause=0)
    assert report.runs == 1 and not Run.objects.filter(pk=loose.pk).exists()
    assert Run.objects.count() == 2

    call_command("prune_runs", "--older-than", "30d", "--include-experiments")
    assert Run.objects.count() == 0
    for cell in Cell.objects.filter(experiment=experiment):
        assert cell.run_id is None and cell.status == "succeeded" and cell.latency_ms == 42


def test_the_drivers_one_statement_update_writes_what_the_orm_would():
    """experiments.driver._cells_update is a fast path: the same cells, updated by it and by the ORM, read back equal."""
    from experiments.driver import FINISH_FIELDS, _cells_update

    workflow, first, _ = make_two_releases("http://127.0.0.1:9/v1")
    experiment = start_experiment(workflow, make_dataset_version(2), [first])
    fast, plain = Cell.objects.filter(experiment=experiment).order_by("id")
    now = timezone.now()
    values = {"status": "failed", "latency_ms": 1234, "prompt_tokens": 7, "completion_tokens": 9,
              "cost_nano": 123_456, "cost_currency": "EUR", "error": "a “quoted” error ✓", "finished_at": now}
    from django.db import connection

    _cells_update(FINISH_FIELDS, [(*[connection.ops.adapt_datetimefield_value(v) if k == "finished_at" else v
                                     for k, v in values.items()], fast.pk)])
    Cell.objects.filter(pk=plain.pk).update(**values)
    fields = [*FINISH_FIELDS, "run_id", "tries"]
    assert Cell.objects.filter(pk=fast.pk).values(*fields).get() == Cell.objects.filter(pk=plain.pk).values(*fields).get()
