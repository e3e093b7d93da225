"""Experiments driven by real Procrastinate workers on PostgreSQL: through a kill -9 of the worker that
drives one, every cell runs once and no committed cell's LLM call is made again."""
from __future__ import annotations

import signal
import time
from collections import Counter
from typing import Any

import pytest
from django.db.models import Count

from experiments.models import Cell, Experiment
from runs.models import Response, Run
from tests.experiments.conftest import make_dataset_version, make_two_releases, start_experiment
from tests.scaleout.conftest import Worker, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]
DRIVE_TASK = "experiments.drive"  # experiments.tasks, which only a distributed session can import


def drive_lock(experiment_id: int) -> str:
    from experiments import tasks

    return tasks.lock(experiment_id)


def drove(worker: Worker) -> bool:
    return f"Starting job {DRIVE_TASK}" in worker.log()


def wait_for_finished(experiment_id: int, timeout: float) -> Experiment:
    def finished() -> Experiment | None:
        experiment = Experiment.objects.get(pk=experiment_id)
        return experiment if experiment.is_finished else None

    return wait_until(finished, timeout, "experiment not finished: " + repr(Counter(
        Cell.objects.filter(experiment_id=experiment_id).values_list("status", flat=True))), interval=0.2)


def assert_every_cell_succeeded_with_one_run_and_one_response(experiment: Experiment, cells: int) -> None:
    assert (experiment.status, experiment.succeeded, experiment.failed) == ("finished", cells, 0)
    rows = list(Cell.objects.filter(experiment=experiment).values_list("status", "tries", "run_id"))
    assert Counter(status for status, _, _ in rows) == {"succeeded": cells}
    assert Counter(tries for _, tries, _ in rows) == {1: cells}  # no cell started a second run
    run_ids = [run_id for _, _, run_id in rows]
    assert len(set(run_ids)) == cells and Run.objects.count() == cells
    per_run = Counter(dict(Response.objects.filter(run_id__in=run_ids).values("run_id").annotate(n=Count("id"))
                           .values_list("run_id", "n")))
    assert set(per_run.values()) == {1} and len(per_run) == cells  # one Response per one-step run


def prompts_by_run(experiment: Experiment) -> dict[int, str]:
    return {run_id: f"Answer briefly: {inputs['topic']}" for run_id, inputs in
            Run.objects.filter(experiment_cell__experiment=experiment).values_list("pk", "inputs")}


def calls_after(logged: list[tuple[float, str]], moment: float, prompts: set[str]) -> int:
    return sum(1 for at, prompt in logged if at > moment and prompt in prompts)


def test_kill_9_of_the_driving_worker_at_40_percent_repeats_no_committed_call(fake_llm: Any, start_worker: Any) -> None:
    cells = 300
    fake_llm.control(latency_ms=100, log_requests=True)
    workflow, first, _ = make_two_releases(fake_llm.base_url, max_concurrency=100)
    workers = [start_worker(concurrency=15), start_worker(concurrency=15)]
    experiment = start_experiment(workflow, make_dataset_version(cells), [first], concurrency=20)

    driver = wait_until(lambda: next((w for w in workers if drove(w)), None), 60, "no worker drives the experiment")
    wait_until(lambda: Cell.objects.filter(experiment=experiment, status="succeeded").count() >= 0.4 * cells, 120,
               "the experiment never reached 40 %")
    killed_at = time.time()  # a call that arrives after this counts as made after the kill
    driver.signal(signal.SIGKILL)
    driver.process.wait(10)
    survivor = next(w for w in workers if w is not driver)

    experiment = wait_for_finished(experiment.pk, timeout=180)

    assert_every_cell_succeeded_with_one_run_and_one_response(experiment, cells)
    prompts = prompts_by_run(experiment)
    committed = set(Response.objects.filter(run_id__in=list(prompts), created_at__lt=_aware(killed_at))
                    .values_list("run_id", flat=True))
    assert 0.3 * cells <= len(committed) < cells, len(committed)  # the kill landed mid-experiment
    logged = fake_llm.requests_logged()
    assert Counter(prompt for _, prompt in logged if prompt in prompts.values()).keys() == set(prompts.values())
    assert calls_after(logged, killed_at, {prompts[run_id] for run_id in committed}) == 0
    assert drove(survivor)  # the driver's job came back on the other worker


def test_two_workers_finish_an_experiment_and_the_sweep_queues_a_driver_that_was_lost(
        fake_llm: Any, start_worker: Any) -> None:
    from procrastinate.contrib.django.models import ProcrastinateJob

    fake_llm.control(latency_ms=50)
    workflow, first, second = make_two_releases(fake_llm.base_url, max_concurrency=100)
    experiment = start_experiment(workflow, make_dataset_version(30), [first, second], concurrency=10)
    # The process that made it died between its commit and the driver's job: no job to find.
    lost = ProcrastinateJob.objects.filter(task_name=DRIVE_TASK, lock=drive_lock(experiment.pk))
    assert lost.count() == 1
    lost.delete()
    workers = [start_worker(concurrency=10), start_worker(concurrency=10)]

    experiment = wait_for_finished(experiment.pk, timeout=120)

    assert_every_cell_succeeded_with_one_run_and_one_response(experiment, 60)
    # The sweep queued a new job: the only one there was is gone.
    assert ProcrastinateJob.objects.filter(task_name=DRIVE_TASK, lock=drive_lock(experiment.pk)).exists()
    assert any(drove(w) for w in workers)
    assert fake_llm.stats()["chat_requests"] == 60


def _aware(timestamp: float) -> Any:
    import datetime

    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
