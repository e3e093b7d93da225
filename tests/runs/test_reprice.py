"""Repricing past steps (runs.reprice): exact totals per currency, provenance, rollups that equal a rebuild,
only the selected steps, and a reprice beside runs that finish while it applies."""
from __future__ import annotations

import datetime
import threading
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from core.money import from_nano, to_nano
from prices.book import book_forget
from prices.models import MATCH_REGEX, Price
from runs.models import RepriceJob, Response, Run, RunStatus, StepRollup
from runs.reprice import (
    reprice_job_claim,
    reprice_job_create,
    reprice_job_run,
    reprice_jobs_work,
    reprice_plan,
    reprice_scope,
)
from runs.rollups import rollups_rebuild
from tests.factories import make_chain, make_endpoint, make_run

pytestmark = pytest.mark.django_db(transaction=True)

MILLION = Decimal(1_000_000)


def add_price(model: str, input_price: str, output_price: str, currency: str = "USD", **fields: object) -> Price:
    price = Price.objects.create(model=model, effective_from=timezone.now() - datetime.timedelta(days=30),
                                 input_per_million=Decimal(input_price), output_per_million=Decimal(output_price),
                                 currency=currency, **fields)
    book_forget()
    return price


def add_run(workflow, *, model: str = "gpt-4o-mini", tokens=((1000, 200), (1500, 300), (700, 90)),
            status: str = RunStatus.SUCCEEDED, **response_fields: object) -> Run:
    """A run whose steps were recorded before the price book (no cost), made final by `status`."""
    run = make_run(workflow=workflow, workflow_name=workflow.name, status=RunStatus.RUNNING)
    for index, (prompt, completion) in enumerate(tokens):
        Response.objects.create(run=run, index=index, output_key=f"k{index}", payload_name="p", endpoint_name="fake",
                                model=model, prompt_tokens=prompt, completion_tokens=completion, status="succeeded",
                                latency_ms=100 + index, **response_fields)
    if status != RunStatus.RUNNING:
        Run.objects.filter(pk=run.pk).update(status=status)  # the trigger counts it now
    return run


def step_rollups() -> list[tuple]:
    return sorted((r.hour, r.workflow_id, r.endpoint_name, r.model, r.cost_currency, r.steps, r.failed, r.prompt_tokens,
                   r.completion_tokens, r.latency_ms, r.cost_nano, r.unpriced) for r in StepRollup.objects.all())


def rebuilt_step_rollups() -> list[tuple]:
    rollups_rebuild(registry=apps)
    return step_rollups()


def cost(prompt: int, completion: int, input_price: str, output_price: str) -> Decimal:
    """One step's cost, rounded once to the nano as the price book rounds it."""
    return from_nano(to_nano((prompt * Decimal(input_price) + completion * Decimal(output_price)) / MILLION))


@pytest.fixture
def workflow():
    return make_chain(make_endpoint())


def test_the_plan_gives_exact_totals_per_currency_and_changes_nothing(workflow):
    add_run(workflow)
    add_run(workflow, model="mistral-small", tokens=((333, 77),))
    add_price("gpt-4o-mini", "0.150001", "0.600007")
    add_price("mistral-.*", "0.2", "0.6", currency="EUR", match=MATCH_REGEX)
    plan = reprice_plan(scope=reprice_scope())
    usd = sum(cost(p, c, "0.150001", "0.600007") for p, c in ((1000, 200), (1500, 300), (700, 90)))
    assert (plan.examined, plan.changed, plan.unpriced_before, plan.unpriced_after) == (4, 4, 4, 0)
    assert plan.totals_before == {}
    assert plan.totals_after == {"EUR": cost(333, 77, "0.2", "0.6"), "USD": usd}
    assert all(isinstance(amount, Decimal) for amount in plan.totals_after.values())
    assert not Response.objects.filter(cost_source__isnull=False).exists()


def test_applying_records_the_entry_each_step_uses_and_moves_the_rollups_as_a_rebuild_counts_them(workflow, capsys):
    add_run(workflow)
    add_run(workflow, status=RunStatus.FAILED, tokens=((10, 0),))
    running = add_run(workflow, status=RunStatus.RUNNING, tokens=((40, 4),))
    price = add_price("gpt-4o-mini", "0.15", "0.6")
    call_command("reprice", "--batch", "2", "--pause", "0")
    out = capsys.readouterr().out
    assert "Steps examined: 5, changed: 5" in out
    assert "USD: 0 -> 0.000843900" in out and "+ 5 unpriced -> + 0 unpriced" in out
    step = Response.objects.get(run__status=RunStatus.SUCCEEDED, index=1)
    assert (step.cost_nano, step.cost_currency, step.cost_source, step.price_id, step.price_version) == (
        405_000, "USD", "computed", price.pk, 1)
    assert f"price #{price.pk} v1" in step.cost_note
    kept = step_rollups()
    assert kept == rebuilt_step_rollups()
    assert sum(row[10] for row in kept) == 270_000 + 405_000 + 159_000 + 1_500  # the running run is not counted yet
    Run.objects.filter(pk=running.pk).update(status=RunStatus.SUCCEEDED)
    assert step_rollups() == rebuilt_step_rollups()
    call_command("reprice", "--pause", "0")  # again: nothing left to change
    assert "Steps examined: 5, changed: 0" in capsys.readouterr().out


def test_a_corrected_price_moves_steps_between_currencies_and_never_adds_them(workflow):
    add_run(workflow)
    price = add_price("gpt-4o-mini", "0.15", "0.6")
    call_command("reprice", "--pause", "0")
    Price.objects.filter(pk=price.pk).update(currency="EUR", version=2)
    book_forget()
    plan = reprice_plan(scope=reprice_scope())
    assert plan.totals_before == {"USD": Decimal("0.000834000")}
    assert plan.totals_after == {"EUR": Decimal("0.000834000")}
    call_command("reprice", "--pause", "0")
    assert {row[4] for row in step_rollups()} == {"EUR"}
    assert step_rollups() == rebuilt_step_rollups()
    assert set(Response.objects.values_list("price_version", flat=True)) == {2}


def test_a_cost_the_server_reported_is_kept(workflow):
    run = add_run(workflow, tokens=((100, 10),), cost_nano=123, cost_currency="USD", cost_source="reported")
    add_price("gpt-4o-mini", "0.15", "0.6")
    plan = reprice_plan(scope=reprice_scope())
    assert (plan.examined, plan.changed) == (1, 0)
    call_command("reprice", "--pause", "0")
    step = Response.objects.get(run=run)
    assert (step.cost_nano, step.cost_source) == (123, "reported")


def test_only_the_selected_steps_change(workflow):
    old = add_run(workflow)
    Response.objects.filter(run=old).update(created_at=timezone.now() - datetime.timedelta(days=10))
    recent = add_run(workflow)
    other_model = add_run(workflow, model="llama-3")
    add_price("gpt-4o-mini", "0.15", "0.6")
    add_price("llama-3", "0.1", "0.1")
    since = (timezone.now() - datetime.timedelta(days=1)).strftime("%Y-%m-%d")
    call_command("reprice", "--since", since, "--model", "gpt-.*", "--pause", "0")
    assert not Response.objects.filter(run__in=[old, other_model], cost_source__isnull=False).exists()
    assert Response.objects.filter(run=recent, cost_source="computed").count() == 3
    assert step_rollups() == rebuilt_step_rollups()


def test_steps_committed_after_a_job_starts_are_never_touched(workflow):
    add_run(workflow)
    add_price("gpt-4o-mini", "0.15", "0.6")
    job = reprice_job_create(scope=reprice_scope())
    later = add_run(workflow, tokens=((5, 5),))
    assert reprice_job_claim(job.pk, owner="test")
    job = reprice_job_run(job.pk, owner="test", pause=0)
    assert (job.status, job.examined, job.changed) == ("done", 3, 3)
    assert not Response.objects.filter(run=later, cost_source__isnull=False).exists()


def test_a_run_that_finishes_between_two_batches_is_counted_once_with_the_new_values(workflow):
    running = add_run(workflow, status=RunStatus.RUNNING)
    add_price("gpt-4o-mini", "0.15", "0.6")
    job = reprice_job_create(scope=reprice_scope(), batch_size=1)
    assert reprice_job_claim(job.pk, owner="test")

    def finish_after_first_batch(progress: RepriceJob) -> None:
        if progress.examined == 1:  # one step repriced while running, two after it became final
            Run.objects.filter(pk=running.pk).update(status=RunStatus.SUCCEEDED)

    job = reprice_job_run(job.pk, owner="test", pause=0, on_batch=finish_after_first_batch)
    assert job.status == "done"
    assert step_rollups() == rebuilt_step_rollups()
    assert sum(row[10] for row in step_rollups()) == 834_000 and sum(row[11] for row in step_rollups()) == 0


def test_a_reprice_beside_runs_finishing_and_committing_changes_only_its_steps_and_counts_each_once(workflow):
    runs = [add_run(workflow, status=RunStatus.RUNNING) for _ in range(12)]
    done = [add_run(workflow) for _ in range(4)]
    add_price("gpt-4o-mini", "0.15", "0.6")
    job = reprice_job_create(scope=reprice_scope(), batch_size=2)
    failures: list[BaseException] = []

    def apply() -> None:
        try:
            assert reprice_job_claim(job.pk, owner="thread")
            reprice_job_run(job.pk, owner="thread", pause=0.001)
        except BaseException as exc:  # noqa: BLE001 (reported by the test below)
            failures.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=apply)
    worker.start()
    live = []
    for run in runs:  # beside it: runs become final, and new steps are committed
        Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
        live.append(add_run(workflow, tokens=((1, 1),)))
    worker.join()
    assert not failures
    job.refresh_from_db()
    assert (job.status, job.examined) == ("done", 3 * (len(runs) + len(done)))
    assert not Response.objects.filter(run__in=live, cost_source__isnull=False).exists()
    assert step_rollups() == rebuilt_step_rollups()


def test_the_sweep_runs_pending_jobs_to_the_end(workflow):
    add_run(workflow)
    add_price("gpt-4o-mini", "0.15", "0.6")
    job = reprice_job_create(scope=reprice_scope())
    assert reprice_jobs_work() == 1
    job.refresh_from_db()
    assert (job.status, job.changed, job.totals_after) == ("done", 3, {"USD": "0.000834000"})
    assert reprice_jobs_work() == 0


def test_a_bad_selection_names_its_field(workflow):
    with pytest.raises(CommandError, match="--model"):
        call_command("reprice", "--model", "gpt-(")
    with pytest.raises(CommandError, match="--since"):
        call_command("reprice", "--since", "last tuesday")
    with pytest.raises(CommandError, match="--until"):
        call_command("reprice", "--since", "2026-11-02", "--until", "2026-11-01")


@pytest.mark.skipif(settings.RUNS_BACKEND != "procrastinate", reason="distributed mode (make test-distributed)")
def test_a_job_made_in_distributed_mode_is_queued_for_a_worker_whose_task_applies_it(workflow):
    from procrastinate.contrib.django.models import ProcrastinateJob

    from runs.engine import tasks

    add_run(workflow)
    add_price("gpt-4o-mini", "0.15", "0.6")
    job = reprice_job_create(scope=reprice_scope())
    assert ProcrastinateJob.objects.filter(task_name=tasks.REPRICE_TASK, status="todo").exists()
    assert async_to_sync(tasks.reprice_jobs.func)(timestamp=0) == 1
    job.refresh_from_db()
    assert (job.status, job.changed) == ("done", 3)
