import json
import subprocess
import sys

import pytest

from tests.factories import expected_chain_output, make_chain, make_endpoint
from tests.servers import ROOT, shared_database_url

pytestmark = pytest.mark.django_db(transaction=True)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "DATABASE_URL": shared_database_url(), "DEBUG": "1"}
    return subprocess.run([sys.executable, "manage.py", "run_workflow", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_run_workflow_prints_progress_and_the_output(fake_llm):
    make_chain(make_endpoint(fake_llm.base_url), stream=True)
    result = run_cli("article", "--input", "topic=tides")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected_chain_output("tides")
    assert "[1/3] outline" in result.stderr and "[3/3] summary" in result.stderr


def test_run_workflow_json_and_failure_exit_code(fake_llm):
    make_chain(make_endpoint(fake_llm.base_url))
    result = run_cli("article", "--input", "topic=tides", "--json")
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["status"] == "succeeded" and len(run["responses"]) == 3
    fake_llm.control(models=["nothing-here"])
    failed = run_cli("article", "--input", "topic=tides")
    assert failed.returncode == 1
    assert "does not exist on this endpoint" in failed.stderr


def test_run_workflow_refuses_missing_inputs(fake_llm):
    make_chain(make_endpoint(fake_llm.base_url))
    result = run_cli("article")
    assert result.returncode != 0
    assert "Missing inputs: topic" in result.stderr
    assert fake_llm.stats()["chat_requests"] == 0


def test_run_workflow_by_label_runs_the_labelled_release(fake_llm):
    from blocks.services import block_update
    from releases.services import label_set, release_cut
    from runs.models import Run
    from tests.releases.test_services import versioned_tree

    workflow, tone = versioned_tree(make_endpoint(fake_llm.base_url))
    release, _ = release_cut(workflow=workflow)
    label_set(workflow=workflow, name="production", release=release)
    block_update(block=tone, data={"content": "Shout about {{ topic }}."})
    result = run_cli("story", "--label", "production", "--input", "topic=tides", "--json")
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["label"] == "production" and run["release"] == {"id": release.pk, "number": 1}
    assert run["responses"][0]["messages"] == [{"role": "user", "content": "Write calmly about tides."}]
    missing = run_cli("story", "--label", "staging", "--input", "topic=tides")
    assert missing.returncode != 0 and "has no label “staging”; its labels: production." in missing.stderr
    assert Run.objects.count() == 1
