"""Experiments in a real embedded server: driven beside the executor, resumed after kill -9 with no
cell lost or run twice and no LLM call repeated for a committed cell."""
from __future__ import annotations

import time

import pytest

from experiments.models import Cell, Experiment
from runs.models import Response, Run
from tests.experiments.conftest import make_dataset_version, make_two_releases, start_experiment

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until(predicate, timeout: float = 120.0, interval: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out")


def finished(experiment_id: int) -> Experiment | None:
    experiment = Experiment.objects.get(pk=experiment_id)
    return experiment if experiment.is_finished else None


def test_a_server_drives_an_experiment_to_the_end(fake_llm, app_server):
    fake_llm.control(latency_ms=20)
    workflow, first, second = make_two_releases(fake_llm.base_url)
    experiment = start_experiment(workflow, make_dataset_version(30), [first, second], concurrency=8)
    app_server(wait_for_http_ready=False)  # it finds the active experiment on start
    experiment = wait_until(lambda: finished(experiment.pk))
    assert experiment.status == "finished" and experiment.succeeded == 60
    assert Run.objects.filter(status="succeeded").count() == 60
    stats = fake_llm.stats()
    assert stats["chat_requests"] == 60
    # Cells start ahead of free slots (driver.tick's `gated`), but never more calls at once than the cap.
    assert stats["inflight_max"] == 8


def test_kill_9_mid_experiment_loses_and_repeats_nothing(fake_llm, app_server):
    fake_llm.control(latency_ms=300)
    workflow, first, second = make_two_releases(fake_llm.base_url)
    experiment = start_experiment(workflow, make_dataset_version(40), [first, second], concurrency=10)
    for kill in range(3):
        server = app_server(wait_for_http_ready=False)
        wait_until(lambda at_least=10 * (kill + 1):
                   Cell.objects.filter(experiment=experiment, status="succeeded").count() >= at_least)
        server.kill()
    committed = set(Response.objects.filter(status="succeeded").values_list("run_id", flat=True))
    requests_at_last_kill = fake_llm.stats()["chat_requests"]
    app_server(wait_for_http_ready=False)
    experiment = wait_until(lambda: finished(experiment.pk))
    assert experiment.status == "finished" and experiment.succeeded == 80 and experiment.failed == 0
    cells = list(Cell.objects.filter(experiment=experiment))
    assert len({c.run_id for c in cells}) == 80 and all(c.tries == 1 for c in cells)  # none started twice
    assert Run.objects.count() == 80
    assert Response.objects.count() == 80  # one response per one-step run: no step duplicated
    # Calls made after the last kill went only to cells whose step had not committed.
    assert fake_llm.stats()["chat_requests"] - requests_at_last_kill <= 80 - len(committed)
