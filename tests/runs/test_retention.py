"""prune_runs: old finished runs go in short batches, pointers into them are cleared, space comes back."""
import datetime
import io
import secrets

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from releases.services import label_set, release_cut
from runs.models import Response, ResponseStatus, Run, RunStatus
from runs.retention import database_bytes, runs_prune, scheduled_prune
from tests.factories import make_endpoint, make_release, make_run
from tests.releases.test_services import versioned_tree

pytestmark = pytest.mark.django_db

OLD = datetime.timedelta(days=100)


def made(workflow, *, age: datetime.timedelta, status: str = RunStatus.SUCCEEDED, release=None, steps: int = 2,
         text: str = "an answer", **fields) -> Run:
    run = make_run(workflow=workflow, workflow_name=workflow.name, status=status, **fields,
                   **({"release": release} if release else {}))
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - age)
    Response.objects.bulk_create([Response(run=run, index=i, output_key=f"s{i}", payload_name="p", output=text,
                                           status=ResponseStatus.SUCCEEDED) for i in range(steps)])
    return run


@pytest.fixture
def workflow():
    return versioned_tree(make_endpoint())[0]


def test_only_finished_runs_older_than_the_age_go(workflow):
    old = [made(workflow, age=OLD, status=s) for s in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)]
    running = made(workflow, age=OLD, status=RunStatus.RUNNING)
    recent = made(workflow, age=datetime.timedelta(days=10))
    report = runs_prune(older_than=datetime.timedelta(days=90), batch_size=2, pause=0)
    assert (report.runs, report.responses, report.batches) == (3, 6, 2)
    assert set(Run.objects.values_list("pk", flat=True)) == {running.pk, recent.pk}
    assert not Response.objects.filter(run_id__in=[r.pk for r in old]).exists()


def test_pointers_into_pruned_runs_are_cleared_and_nothing_dangles(workflow):
    source = made(workflow, age=OLD)
    replay = made(workflow, age=datetime.timedelta(days=1), source_run=source)
    Response.objects.filter(run=replay, index=0).update(copied_from=Response.objects.get(run=source, index=0))
    runs_prune(older_than=datetime.timedelta(days=90), pause=0)
    replay.refresh_from_db()
    assert replay.source_run_id is None
    assert Response.objects.get(run=replay, index=0).copied_from_id is None
    if connection.vendor == "sqlite":  # PostgreSQL checks its (deferred) constraints at commit
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA foreign_key_check")
            assert cursor.fetchall() == []


def test_keep_labelled_and_workflow_narrow_what_goes(workflow):
    release, _ = release_cut(workflow=workflow)
    label_set(workflow=workflow, name="production", release=release)
    labelled = made(workflow, age=OLD, release=release)
    other = versioned_tree(workflow.steps.get().payload.endpoint, name="other")[0]
    elsewhere = made(other, age=OLD)
    plain = made(workflow, age=OLD, release=make_release(workflow, {"steps": []}))  # a release no label names
    report = runs_prune(older_than=datetime.timedelta(days=90), workflow=workflow, keep_labelled=True, pause=0)
    assert report.runs == 1
    assert set(Run.objects.values_list("pk", flat=True)) == {labelled.pk, elsewhere.pk}
    assert not Run.objects.filter(pk=plain.pk).exists()


def test_a_dry_run_counts_and_deletes_nothing(workflow):
    for _ in range(3):
        made(workflow, age=OLD)
    out = io.StringIO()
    call_command("prune_runs", "--older-than", "90d", "--dry-run", stdout=out)
    assert out.getvalue().strip() == "Would delete 3 runs and 6 responses (dry run)."
    assert Run.objects.count() == 3


@pytest.mark.parametrize("age", ["90", "ninety days", "0d", "-5d"])
def test_a_bad_age_is_an_error_naming_the_option(age):
    with pytest.raises(CommandError, match="--older-than"):
        call_command("prune_runs", "--older-than", age)


def test_an_unknown_workflow_is_an_error_naming_it(workflow):
    with pytest.raises(CommandError, match="No workflow named “nope”"):
        call_command("prune_runs", "--older-than", "1d", "--workflow", "nope")


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's file; PostgreSQL's autovacuum reuses space")
def test_pruning_returns_the_space_to_the_file_system(workflow):
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA auto_vacuum")
        assert cursor.fetchone()[0] == 2  # a new file is created with incremental auto-vacuum
    for _ in range(300):
        made(workflow, age=OLD, text=secrets.token_urlsafe(15_000))  # outputs are stored compressed: no repeats
    before = database_bytes()
    out = io.StringIO()
    call_command("prune_runs", "--older-than", "90d", stdout=out)
    assert "Deleted 300 runs and 600 responses" in out.getvalue()
    assert before > 300 * 2 * 15_000 and database_bytes() < before * 0.3


def test_the_scheduled_prune_follows_the_setting(workflow, settings):
    made(workflow, age=OLD)
    settings.RUNS_PRUNE_OLDER_THAN_DAYS = 0
    assert scheduled_prune() is None and Run.objects.count() == 1
    settings.RUNS_PRUNE_OLDER_THAN_DAYS = 90
    assert scheduled_prune().runs == 1 and not Run.objects.exists()
