"""/metrics over real HTTP after real runs against the fake LLM server; who may read it; the worker's endpoint."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.authtoken.models import Token

from observability import metrics
from runs.models import Response, Run
from tests.factories import make_chain, make_endpoint, make_run
from tests.prices.conftest import make_price
from tests.servers import api

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "metrics-token-for-tests"


def scrape(url: str, token: str | None = TOKEN) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, from Prometheus' text format."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_until(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def test_metrics_move_with_real_runs_in_the_server(fake_llm, app_server, user):
    workflow = make_chain(make_endpoint(fake_llm.base_url, name="fake-ep"), stream=True)
    make_price("gpt-4o-mini")
    server = app_server(METRICS_TOKEN=TOKEN, METRICS_ALLOWED_NETWORKS="10.99.0.0/16")
    status, before = scrape(f"{server.url}/metrics")
    assert status == 200
    before_samples = samples(before)
    labels = {"endpoint": "fake-ep", "model": "gpt-4o-mini"}
    assert value(before_samples, "orchestrator_steps_total", **labels, status="succeeded") == 0
    fake_llm.fail_next({"status": 429, "retry_after": "0.01"})
    token = Token.objects.create(user=user).key
    run_ids = [api(f"{server.url}/api/workflows/{workflow.pk}/runs/", token, "POST", {"inputs": {"topic": f"t{i}"}})[1]["id"]
               for i in range(2)]
    wait_until(lambda: Run.objects.filter(pk__in=run_ids, status="succeeded").count() == 2)
    status, after = scrape(f"{server.url}/metrics")
    assert status == 200
    found = samples(after)
    assert value(found, "orchestrator_runs_started_total") == 2
    assert value(found, "orchestrator_runs_finished_total", status="succeeded") == 2
    assert value(found, "orchestrator_steps_total", **labels, status="succeeded") == 6
    assert value(found, "orchestrator_step_latency_seconds_count", **labels) == 6
    assert value(found, "orchestrator_step_ttft_seconds_count", **labels) == 6
    responses = Response.objects.filter(run_id__in=run_ids)
    assert value(found, "orchestrator_llm_tokens_total", **labels, type="output") == 6 * 20
    assert value(found, "orchestrator_llm_tokens_total", **labels, type="input") == sum(r.prompt_tokens for r in responses)
    assert value(found, "orchestrator_llm_errors_total", **labels, kind="rate_limited") == 1
    assert value(found, "orchestrator_llm_retries_total", **labels) == 1
    cost = value(found, "orchestrator_llm_cost_total", **labels, currency="USD")
    assert cost > 0 and cost == pytest.approx(sum(r.cost_nano for r in responses) / 1e9)
    assert value(found, "orchestrator_runs_active", status="queued") == 0
    # Labels are endpoints, models, statuses and kinds: never a run id.
    label_names = {name for (series, labels_of) in found if series.startswith("orchestrator_") for name, _ in labels_of}
    assert label_names == {"endpoint", "model", "status", "type", "kind", "currency", "le"}
    # Two runs that use the response cache: the first stores its three answers, the second is answered from them.
    for _ in range(2):
        run_id = api(f"{server.url}/api/workflows/{workflow.pk}/runs/", token, "POST",
                     {"inputs": {"topic": "cached"}, "cache_mode": "use"})[1]["id"]
        wait_until(lambda run_id=run_id: Run.objects.filter(pk=run_id, status="succeeded").exists())
    found = samples(scrape(f"{server.url}/metrics")[1])
    assert value(found, "orchestrator_cache_hits_total", **labels) == 3
    assert value(found, "orchestrator_step_latency_seconds_count", **labels) == 9  # a hit made no call


def test_the_server_refuses_a_scrape_without_the_token_or_with_a_wrong_one(app_server):
    server = app_server(METRICS_TOKEN=TOKEN, METRICS_ALLOWED_NETWORKS="10.99.0.0/16")
    status, _ = scrape(f"{server.url}/metrics", token=None)
    assert status == 401
    status, _ = scrape(f"{server.url}/metrics", token="wrong")
    assert status == 403


@pytest.mark.parametrize(("networks", "expected"), [([], 403), (["10.0.0.0/8"], 403), (["127.0.0.0/8"], 200), (["::1/128"], 403)])
def test_an_address_outside_the_allowed_networks_is_refused_and_with_none_every_one_is(client, networks, expected):
    with override_settings(METRICS_TOKEN="", METRICS_ALLOWED_NETWORKS=networks):
        assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == expected


def test_a_forged_forwarded_for_header_does_not_open_the_network_guard(client):
    with override_settings(METRICS_TOKEN="", METRICS_ALLOWED_NETWORKS=["10.0.0.0/8"]):
        assert client.get("/metrics", REMOTE_ADDR="192.0.2.7", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 403


def test_the_backlog_gauges_are_read_from_the_database_at_scrape_time(client):
    make_run(workflow_name="w", status="queued", step_count=3, next_step=0)
    make_run(workflow_name="w", status="queued", step_count=2, next_step=0)
    make_run(workflow_name="w", status="running", step_count=4, next_step=1)
    make_run(workflow_name="w", status="succeeded", step_count=5, next_step=5)
    with override_settings(METRICS_TOKEN=TOKEN):
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 200
    found = samples(response.content.decode())
    assert value(found, "orchestrator_runs_active", status="queued") == 2
    assert value(found, "orchestrator_runs_active", status="running") == 1
    assert value(found, "orchestrator_steps_queued") == 3 + 2 + 3
    assert value(found, "orchestrator_oldest_queued_run_age_seconds") >= 0


def test_a_workers_endpoint_serves_its_own_counters_behind_the_same_guard():
    metrics.CACHE_HITS.labels("worker-ep", "m1").inc()
    with override_settings(METRICS_TOKEN=TOKEN, METRICS_ALLOWED_NETWORKS=["10.99.0.0/16"]):
        server = metrics.worker_server_start(address="127.0.0.1", port=0)
        try:
            url = f"http://127.0.0.1:{server.server_port}/metrics"
            assert scrape(url, token=None)[0] == 401
            assert scrape(url, token="wrong")[0] == 403
            status, text = scrape(url)
        finally:
            server.shutdown()
            server.server_close()
    assert status == 200
    found = samples(text)
    assert value(found, "orchestrator_cache_hits_total", endpoint="worker-ep", model="m1") >= 1
    assert not any(name == "orchestrator_runs_active" for name, _ in found)  # the database's gauges are the web's


def production(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("DEBUG", "TEST_DATABASE_NAME") and not k.startswith(("METRICS_", "OTEL_"))}
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**environment, "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50), **env})


def test_production_without_a_metrics_token_or_network_does_not_start():
    result = production()
    assert result.returncode != 0
    assert "METRICS_TOKEN" in result.stderr and "METRICS_ALLOWED_NETWORKS" in result.stderr
    assert production(METRICS_TOKEN=TOKEN).returncode == 0, production(METRICS_TOKEN=TOKEN).stderr
    assert production(METRICS_ENABLED="0").returncode == 0


@pytest.mark.parametrize(("env", "named"), [
    ({"METRICS_TOKEN": TOKEN, "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ({"METRICS_TOKEN": TOKEN, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ({"METRICS_ALLOWED_NETWORKS": "10.0.0.0/33"}, "METRICS_ALLOWED_NETWORKS"),
])
def test_bad_observability_settings_are_a_clear_error_at_start_up(env, named):
    result = production(**env)
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr and named in result.stderr
