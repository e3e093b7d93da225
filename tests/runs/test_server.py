"""Runs inside the real daphne server (embedded mode): start-up, crash and resume, concurrency."""
import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from rest_framework.authtoken.models import Token

from runs.models import Response, Run
from runs.services import run_start
from tests.factories import expected_chain_output, make_chain, make_endpoint
from tests.servers import api

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)


def finished(run_ids):
    return Run.objects.filter(pk__in=run_ids, status__in=["succeeded", "failed", "cancelled"]).count() == len(run_ids)


def assert_exactly_one_response_per_step(run: Run) -> None:
    indexes = list(Response.objects.filter(run=run).order_by("index").values_list("index", flat=True))
    assert indexes == list(range(run.step_count))


def test_a_run_queued_before_the_server_started_finishes_with_no_request_arriving(fake_llm, app_server):
    workflow = make_chain(make_endpoint(fake_llm.base_url))
    run = run_start(workflow=workflow, inputs={"topic": "tides"}, user=None)
    assert Run.objects.get(pk=run.pk).status == "queued"
    app_server(wait_for_http_ready=False)
    wait_until(lambda: finished([run.pk]))
    run.refresh_from_db()
    assert run.status == "succeeded" and run.output == expected_chain_output("tides")


def test_runs_started_over_the_api_run_in_the_server(fake_llm, app_server, user):
    workflow = make_chain(make_endpoint(fake_llm.base_url), stream=True)
    server = app_server()
    token = Token.objects.create(user=user).key
    status, body = api(f"{server.url}/api/workflows/{workflow.pk}/runs/", token, "POST", {"inputs": {"topic": "tides"}})
    assert status == 201, body
    assert body["status"] in ("queued", "running") and body["inputs"] == {"topic": "tides"}
    wait_until(lambda: finished([body["id"]]))
    status, run = api(f"{server.url}/api/runs/{body['id']}/", token)
    assert run["status"] == "succeeded" and run["output"] == expected_chain_output("tides")
    assert [r["index"] for r in run["responses"]] == [0, 1, 2]
    assert all(r["completion_tokens"] == 20 and r["latency_ms"] >= 0 for r in run["responses"])


def test_missing_inputs_are_rejected_before_any_llm_call(fake_llm, app_server, user):
    workflow = make_chain(make_endpoint(fake_llm.base_url))
    server = app_server()
    token = Token.objects.create(user=user).key
    status, body = api(f"{server.url}/api/workflows/{workflow.pk}/runs/", token, "POST", {"inputs": {"topc": "x"}})
    assert status == 400
    assert "Unknown inputs: topc" in body["inputs"][0] and "Missing inputs: topic" in body["inputs"][1]
    assert Run.objects.count() == 0
    assert fake_llm.stats()["chat_requests"] == 0


def test_server_killed_mid_run_resumes_with_exactly_one_response_per_step(fake_llm, app_server):
    fake_llm.control(latency_ms=150)
    workflow = make_chain(make_endpoint(fake_llm.base_url))
    runs = [run_start(workflow=workflow, inputs={"topic": f"t{i}"}, user=None) for i in range(5)]
    rng = random.Random(7)
    for _ in range(3):
        server = app_server(wait_for_http_ready=False)
        time.sleep(rng.uniform(0.2, 0.8))
        server.kill()
    app_server(wait_for_http_ready=False)
    wait_until(lambda: finished([r.pk for r in runs]))
    for run in runs:
        run.refresh_from_db()
        assert run.status == "succeeded", run.error
        assert run.output == expected_chain_output(run.inputs["topic"])
        assert_exactly_one_response_per_step(run)


def test_fifty_concurrent_runs_on_sqlite_all_succeed(fake_llm, app_server, user):
    fake_llm.control(latency_ms=20)
    workflow = make_chain(make_endpoint(fake_llm.base_url))
    server = app_server()
    token = Token.objects.create(user=user).key

    def start(i: int) -> tuple[int, dict]:
        return api(f"{server.url}/api/workflows/{workflow.pk}/runs/", token, "POST", {"inputs": {"topic": f"t{i}"}})

    with ThreadPoolExecutor(max_workers=25) as pool:
        results = list(pool.map(start, range(50)))
    assert [status for status, _ in results] == [201] * 50
    ids = [body["id"] for _, body in results]
    wait_until(lambda: finished(ids), timeout=120)
    assert Run.objects.filter(pk__in=ids, status="succeeded").count() == 50
    assert Response.objects.filter(run_id__in=ids).count() == 150
