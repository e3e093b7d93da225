"""A reprice killed with SIGKILL mid-job resumes after its last committed batch: running it again ends with
the totals, step costs and rollups of an uninterrupted reprice, nothing lost or counted twice."""
import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.core.management import call_command

from runs.models import RepriceJob, Response
from runs.reprice import reprice_job_create, reprice_plan, reprice_scope
from tests.factories import make_chain, make_endpoint
from tests.runs.test_reprice import add_price, add_run, cost, rebuilt_step_rollups, step_rollups
from tests.servers import ROOT, shared_database_url

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = 40


def test_a_reprice_killed_mid_job_resumes_to_the_totals_of_an_uninterrupted_one():
    workflow = make_chain(make_endpoint())
    tokens = {n: ((1000 + n, 200 + n), (1500 + 3 * n, 300), (700, 90 + 7 * n)) for n in range(RUNS)}
    runs = {add_run(workflow, tokens=tokens[n]).pk: tokens[n] for n in range(RUNS)}
    add_price("gpt-4o-mini", "0.150001", "0.600007")
    plan = reprice_plan(scope=reprice_scope())  # what an uninterrupted reprice ends with
    env = {**os.environ, "DATABASE_URL": shared_database_url(), "DEBUG": "1", "REPRICE_LEASE_SECONDS": "1"}
    process = subprocess.Popen([sys.executable, "manage.py", "reprice", "--batch", "1", "--pause", "0.05"],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not RepriceJob.objects.filter(examined__gte=RUNS // 2).exists() and time.monotonic() < deadline:
            assert process.poll() is None, "the reprice ended before it could be killed"
            time.sleep(0.02)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    job = RepriceJob.objects.get()
    assert job.status == "running" and 0 < job.examined < plan.examined  # killed mid-job
    # What the job recorded is exactly what its committed batches changed.
    assert Response.objects.filter(cost_source="computed").count() == job.examined == job.changed

    call_command("reprice", "--pause", "0")  # the same selection: resumes that job once its lease runs out

    job.refresh_from_db()
    assert (job.status, job.examined, job.changed) == ("done", plan.examined, plan.changed)
    assert job.totals_before == {} and job.totals_after == {c: str(a) for c, a in plan.totals_after.items()}
    assert (job.unpriced_before, job.unpriced_after) == (plan.unpriced_before, 0)
    assert RepriceJob.objects.count() == 1
    for step in Response.objects.all():
        prompt, completion = runs[step.run_id][step.index]
        assert step.cost_nano == int(cost(prompt, completion, "0.150001", "0.600007") * 10**9)
    assert step_rollups() == rebuilt_step_rollups()


@pytest.mark.skipif(settings.RUNS_BACKEND != "embedded", reason="the embedded executor's sweep")
def test_the_embedded_server_applies_a_job_and_one_killed_mid_job_is_resumed_by_the_next(app_server):
    workflow = make_chain(make_endpoint())
    for n in range(RUNS):
        add_run(workflow, tokens=((100 + n, 10), (200, 20 + n)))
    add_price("gpt-4o-mini", "0.15", "0.6")
    plan = reprice_plan(scope=reprice_scope())
    job = reprice_job_create(scope=reprice_scope(), batch_size=1)
    server = app_server(wait_for_http_ready=False, REPRICE_LEASE_SECONDS="1")
    wait_for(lambda: RepriceJob.objects.filter(pk=job.pk, examined__gte=RUNS // 2).exists())
    server.kill()
    job.refresh_from_db()
    assert job.status == "running" and job.examined < plan.examined
    app_server(wait_for_http_ready=False)  # its sweep claims the job once the dead server's lease ran out
    wait_for(lambda: RepriceJob.objects.filter(pk=job.pk, status="done").exists())
    job.refresh_from_db()
    assert (job.examined, job.changed) == (plan.examined, plan.changed)
    assert job.totals_after == {c: str(a) for c, a in plan.totals_after.items()}
    assert step_rollups() == rebuilt_step_rollups()


def wait_for(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)
