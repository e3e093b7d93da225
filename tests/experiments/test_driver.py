"""The driver over real HTTP to the fake LLM: cells start as capacity frees, every cell gets exactly
one run, the figures add up, cancel and budget stop it, errored cells are retried alone."""
from __future__ import annotations

import asyncio
import datetime
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from experiments.driver import tick
from experiments.models import Cell, Experiment
from experiments.services import experiment_cancel, experiment_retry_errors
from prices.book import book_forget
from prices.models import Price
from prices.services import price_save
from runs.engine import execute_run
from runs.models import Run
from tests.experiments.conftest import make_dataset_version, make_two_releases, start_experiment

pytestmark = pytest.mark.django_db(transaction=True)
YESTERDAY = timezone.now() - datetime.timedelta(days=1)


@pytest.fixture(autouse=True)
def _fresh_price_book():
    book_forget()
    yield
    book_forget()


async def drive(experiment_id: int, *, max_running_seen: list[int] | None = None) -> Experiment:
    """What the embedded driver does, in this test's loop: tick, execute what started, until final."""
    tasks: dict[int, asyncio.Task] = {}
    while True:
        result = await sync_to_async(tick)(experiment_id=experiment_id)
        for run_id in (*result.started, *result.running):
            if run_id not in tasks:
                tasks[run_id] = asyncio.ensure_future(execute_run(run_id))
        if max_running_seen is not None:
            max_running_seen.append(sum(not t.done() for t in tasks.values()))
        if result.final:
            return await Experiment.objects.aget(pk=experiment_id)
        pending = [t for t in tasks.values() if not t.done()]
        if pending:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)


async def test_every_cell_runs_once_within_the_concurrency_cap_and_the_counts_add_up(fake_llm):
    fake_llm.control(latency_ms=30, usage_cost=0.001)
    workflow, first, second = await sync_to_async(make_two_releases)(fake_llm.base_url)
    version = await sync_to_async(make_dataset_version)(7)
    experiment = await sync_to_async(start_experiment)(workflow, version, [first, second], repeats=2, concurrency=3)
    assert experiment.cell_count == 28 and experiment.queued == 28
    seen: list[int] = []
    experiment = await drive(experiment.pk, max_running_seen=seen)
    assert experiment.status == "finished"
    assert (experiment.succeeded, experiment.failed, experiment.queued, experiment.running) == (28, 0, 0, 0)
    assert max(seen) == 3  # the cap was reached and never passed
    cells = [c async for c in Cell.objects.filter(experiment=experiment).select_related("run")]
    assert len({c.run_id for c in cells}) == 28 and all(c.tries == 1 for c in cells)
    assert await Run.objects.acount() == 28  # one run per cell, no more
    assert fake_llm.stats()["chat_requests"] == 28
    for cell in cells:
        assert cell.run.status == "succeeded" and cell.status == "succeeded"
        assert cell.run.release_id == (first.pk if cell.variant_id == min(c.variant_id for c in cells) else second.pk)
        assert cell.run.inputs == {"topic": f"t{cell.position}"}
        assert cell.latency_ms == cell.run.latency_ms and cell.completion_tokens == cell.run.completion_tokens
    # The fake server reports $0.001 a call: what the cells cost is what the experiment counted.
    assert experiment.cost_currency == "USD" and experiment.cost_nano == 28 * 1_000_000
    assert experiment.prompt_tokens == sum(c.prompt_tokens for c in cells)


async def test_cancel_ends_queued_cells_and_cancels_running_ones(fake_llm):
    fake_llm.control(latency_ms=2000)
    workflow, first, _ = await sync_to_async(make_two_releases)(fake_llm.base_url)
    version = await sync_to_async(make_dataset_version)(10)
    experiment = await sync_to_async(start_experiment)(workflow, version, [first], concurrency=2)
    result = await sync_to_async(tick)(experiment_id=experiment.pk)
    assert len(result.started) == 2
    running = [asyncio.ensure_future(execute_run(run_id)) for run_id in result.started]
    await asyncio.sleep(0.3)
    await sync_to_async(experiment_cancel)(experiment=experiment)
    await asyncio.gather(*running)
    experiment = await drive(experiment.pk)
    assert experiment.status == "cancelled"
    assert (experiment.cancelled, experiment.succeeded, experiment.queued) == (10, 0, 0)
    assert await Run.objects.acount() == 2  # the queued cells never got a run
    assert fake_llm.stats()["chat_requests"] == 2


async def test_retry_errors_reruns_only_the_failed_cells_with_new_runs(fake_llm):
    workflow, first, _ = await sync_to_async(make_two_releases)(fake_llm.base_url, max_retries=0)
    version = await sync_to_async(make_dataset_version)(6)
    # Two calls fail for good (no retries on this endpoint); the other four succeed.
    fake_llm.fail_next({"status": 500}, {"status": 500})
    experiment = await sync_to_async(start_experiment)(workflow, version, [first], concurrency=1)
    experiment = await drive(experiment.pk)
    assert experiment.status == "finished" and (experiment.succeeded, experiment.failed) == (4, 2)
    failed = {c.pk: c.run_id async for c in Cell.objects.filter(experiment=experiment, status="failed")}
    assert await sync_to_async(experiment_retry_errors)(experiment=experiment) == 2
    experiment = await drive(experiment.pk)
    assert experiment.status == "finished" and (experiment.succeeded, experiment.failed) == (6, 0)
    async for cell in Cell.objects.filter(pk__in=failed):
        assert cell.status == "succeeded" and cell.tries == 2 and cell.run_id != failed[cell.pk]
    assert await Run.objects.acount() == 8  # the failed runs are kept beside their retries
    assert fake_llm.stats()["chat_requests"] == 8


async def test_the_budget_stops_the_experiment_and_skips_what_it_did_not_start(fake_llm):
    workflow, first, _ = await sync_to_async(make_two_releases)(fake_llm.base_url)
    # $1 per thousand tokens each way: a call of a dozen tokens or so costs about a cent.
    await sync_to_async(price_save)(Price(model="gpt-4o-mini", match="exact", effective_from=YESTERDAY,
                                          input_per_million=Decimal(1000), output_per_million=Decimal(1000)))
    version = await sync_to_async(make_dataset_version)(20)
    experiment = await sync_to_async(start_experiment)(workflow, version, [first], concurrency=1, budget="0.05",
                                                       budget_currency="USD")
    experiment = await drive(experiment.pk)
    assert experiment.status == "budget"
    done = experiment.succeeded + experiment.failed
    assert 2 <= done < 20
    assert experiment.skipped == 20 - done
    cells = [c async for c in Cell.objects.filter(experiment=experiment, status__in=["succeeded", "failed"])]
    assert experiment.cost_nano == sum(c.cost_nano for c in cells)
    # One cell at a time, each run capped at what is left: the cap is never passed, and it stopped
    # only when one more cell could have passed it.
    assert experiment.cost_nano <= 50_000_000 < experiment.cost_nano + 2 * max(c.cost_nano for c in cells)
    # The cell whose run stopped before its call (its worst case passed what was left) counts as skipped.
    assert await Run.objects.acount() in (done, done + 1)


def test_a_gated_pass_starts_cells_ahead_but_reports_at_most_the_cap_running(fake_llm):
    """The embedded driver executes its runs behind a gate of `concurrency`, so a pass starts as many again,
    ready the moment a slot frees; progress counts those as queued (their calls have not started)."""
    workflow, first, _ = make_two_releases(fake_llm.base_url)
    experiment = start_experiment(workflow, make_dataset_version(10), [first], concurrency=3)
    result = tick(experiment_id=experiment.pk, gated=True)
    assert len(result.started) == 6 and result.concurrency == 3
    experiment.refresh_from_db()
    assert (experiment.running, experiment.queued) == (6, 4)
    assert (result.progress["running"], result.progress["queued"]) == (3, 7)
    # The next pass starts nothing more until a run ends.
    assert tick(experiment_id=experiment.pk, gated=True).started == []


def test_a_gated_pass_with_a_budget_starts_only_up_to_the_cap(fake_llm):
    """Each run of a budgeted experiment is capped at what was left when it started: none starts ahead."""
    workflow, first, _ = make_two_releases(fake_llm.base_url)
    price_save(Price(model="gpt-4o-mini", match="exact", effective_from=YESTERDAY,
                     input_per_million=Decimal(1), output_per_million=Decimal(1)))
    experiment = start_experiment(workflow, make_dataset_version(10), [first], concurrency=3, budget="1",
                                  budget_currency="USD")
    assert len(tick(experiment_id=experiment.pk, gated=True).started) == 3


async def test_the_embedded_driver_passes_after_half_a_gate_of_ended_runs_or_when_no_cell_waits():
    """Cells wait behind the gate: a pass is due every concurrency/2 ended runs, not at every one; once
    no cell waits (a slot would idle), at once. A run held twice counts once."""
    from experiments.driver import _Feed

    wake = asyncio.Event()
    feed = _Feed(wake)
    feed.passed(4)
    runs = {run_id: asyncio.get_running_loop().create_future() for run_id in range(8)}
    for run_id, task in runs.items():
        feed.hold(run_id, task)
    feed.hold(0, runs[0])

    async def end(run_id: int) -> bool:
        runs[run_id].set_result(None)
        await asyncio.sleep(0)
        return wake.is_set()

    assert await end(0) is False  # 7 executing, 3 of them waiting behind the gate: 1 ended
    assert await end(1) is True  # 2 ended: half the gate
    wake.clear()
    feed.passed(4)
    assert await end(2) is False
    assert await end(3) is True  # 4 executing: nothing waits any more
