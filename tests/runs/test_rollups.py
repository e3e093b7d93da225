"""The statistics rollups the database keeps (a trigger) equal what the plain ORM computes from the runs."""
import pytest
from asgiref.sync import sync_to_async
from django.apps import apps
from django.core.management import call_command
from django.db import connection

from runs import triggers
from runs.engine import execute_run
from runs.models import Run, RunRollup, RunStatus, StepRollup
from runs.rollups import rollups_rebuild, run_rollup_rows, step_rollup_rows
from runs.services import run_cancel, run_replay, run_start
from tests.factories import make_chain, make_endpoint

pytestmark = pytest.mark.django_db(transaction=True)


def kept() -> tuple[list[tuple], list[tuple]]:
    runs = sorted((r.hour, r.workflow_id, r.release_id, r.status, r.runs, r.prompt_tokens, r.completion_tokens,
                   r.latency_ms) for r in RunRollup.objects.all())
    steps = sorted((r.hour, r.workflow_id, r.endpoint_name, r.model, r.cost_currency, r.steps, r.failed, r.prompt_tokens,
                    r.completion_tokens, r.latency_ms, r.cost_nano, r.unpriced) for r in StepRollup.objects.all())
    return runs, steps


def computed() -> tuple[list[tuple], list[tuple]]:
    runs = sorted((r["hour"], r["workflow_id"], r["release_id"], r["status"], r["runs"], r["prompt"] or 0,
                   r["completion"] or 0, r["latency"] or 0) for r in run_rollup_rows(apps))
    steps = sorted((r["hour"], r["run__workflow_id"], r["endpoint_name"], r["model"], r["currency"], r["steps"], r["failed"],
                    r["prompt"] or 0, r["completion"] or 0, r["latency"] or 0, r["cost"] or 0, r["unpriced"])
                   for r in step_rollup_rows(apps))
    return runs, steps


async def test_every_way_of_finishing_a_run_is_counted_once(fake_llm):
    workflow = await sync_to_async(lambda: make_chain(make_endpoint(fake_llm.base_url)))()
    start = sync_to_async(lambda **inputs: run_start(workflow=workflow, inputs=inputs or {"topic": "tides"}, user=None))
    done = [await start(topic=f"t{n}") for n in range(3)]
    for run in done:
        assert await execute_run(run.pk) == RunStatus.SUCCEEDED
    fake_llm.fail_next({"status": 400, "body": {"error": {"message": "bad request"}}})
    failing = await start(topic="f")
    assert await execute_run(failing.pk) == RunStatus.FAILED
    cancelled = await start(topic="c")
    await sync_to_async(run_cancel)(run=cancelled)
    source = await Run.objects.aget(pk=done[0].pk)
    replay = await sync_to_async(run_replay)(source=source, user=None, from_step=2)
    assert await execute_run(replay.pk) == RunStatus.SUCCEEDED
    runs, steps = await sync_to_async(kept)()
    assert sum(row[4] for row in runs) == 6  # 4 succeeded, 1 failed, 1 cancelled
    assert {row[3] for row in runs} == {"succeeded", "failed", "cancelled"}
    assert sum(row[5] for row in steps) == 3 * 3 + 1 + 1  # the replay's two copied steps are not counted again
    assert (runs, steps) == await sync_to_async(computed)()


@pytest.mark.django_db
def test_every_trigger_is_there_after_migrating():
    """A migration that makes SQLite rebuild runs_run or runs_response drops their triggers silently."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        else:
            cursor.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
        names = {row[0] for row in cursor.fetchall()}
    assert set(triggers.TRIGGERS[connection.vendor]) <= names


@pytest.mark.django_db
def test_the_rebuild_gives_the_same_rollups_and_the_command_says_what_it_did(capsys):
    workflow = make_chain(make_endpoint())
    for n in range(3):
        run = run_start(workflow=workflow, inputs={"topic": f"t{n}"}, user=None)
        Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, prompt_tokens=n, latency_ms=10 * n)
    before = kept()
    assert before[0] and before == computed()
    RunRollup.objects.all().delete()
    call_command("rebuild_run_stats")
    assert kept() == before
    assert "Rebuilt 1 run rollup rows" in capsys.readouterr().out
    assert rollups_rebuild(registry=apps) == (1, 0)


@pytest.mark.django_db(transaction=True)
def test_migrating_back_before_costs_keeps_the_rollups_right_and_runs_finishing():
    """runs 0013 reversed: the old key cannot hold one hour's rows of two currencies, and the old
    triggers (frozen in runs/migrations/_triggers_0012.py) must not name the cost columns."""
    import datetime
    from decimal import Decimal

    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    from prices.models import Price
    from prices.services import price_save
    from runs.models import Response

    workflow = make_chain(make_endpoint())
    price_save(Price(model="gpt-4o-mini", effective_from=timezone.now() - datetime.timedelta(days=1),
                     input_per_million=Decimal("1"), output_per_million=Decimal("2")))
    runs = [run_start(workflow=workflow, inputs={"topic": f"t{n}"}, user=None) for n in range(3)]
    for n, run in enumerate(runs[:2]):  # one step priced, one unknown: two currencies ('USD', '') in one hour
        Response.objects.create(run=run, index=0, output_key="outline", payload_name="p", endpoint_name="fake",
                                model="gpt-4o-mini", status="succeeded", prompt_tokens=10,
                                cost_nano=None if n else 20, cost_currency=None if n else "USD")
        Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    executor = MigrationExecutor(connection)
    before = [("runs", "0012_partial_and_fewer_indexes")]
    try:
        executor.migrate(before)
        old = MigrationExecutor(connection).loader.project_state(before).apps
        old_steps = old.get_model("runs", "StepRollup")
        assert [(r.steps, r.prompt_tokens) for r in old_steps.objects.all()] == [(2, 20)]
        old.get_model("runs", "Run").objects.filter(pk=runs[2].pk).update(status="failed")  # the old trigger runs
        assert old.get_model("runs", "RunRollup").objects.filter(status="failed").get().runs == 1
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert kept() == computed()
