"""manage.py run_experiment and export_experiment, in this process, over real HTTP to the fake LLM: an
experiment driven to its end, JSON lines for scripts, exit codes, bad options named, the export."""
from __future__ import annotations

import csv
import datetime
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.core.management.base import OutputWrapper
from django.utils import timezone

from experiments.management.commands.run_experiment import ProgressView, progress_line
from experiments.models import Cell, Experiment
from experiments.services import experiment_cancel
from prices.models import Price
from prices.services import price_save
from runs.models import Run
from tests.experiments.conftest import make_dataset_version, make_two_releases, start_experiment
from tests.experiments.running import drive_to_end
from tests.factories import make_block, make_endpoint, make_payload, make_workflow

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def setup(fake_llm) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    workflow, first, second = make_two_releases(fake_llm.base_url, max_retries=0)
    version = make_dataset_version(3)
    return {"workflow": workflow, "first": first, "second": second, "version": version,
            "args": ["--workflow", "answer", "--dataset", "topics", "--variant", f"release:{first.pk}"]}


def run_experiment(*args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of the command run in this process."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("run_experiment", *args, stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_an_experiment_runs_to_its_end_with_json_lines_and_exit_0(setup, fake_llm) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run_experiment(*setup["args"], "--variant", f"release:{setup['second'].pk}", "--repeats", "2",
                                    "--concurrency", "3", "--json", "--name", "cli")
    assert code == 0, err
    lines = _json_lines(out)
    summary = lines[-1]
    assert summary["type"] == "experiment.summary"
    assert (summary["status"], summary["cells"], summary["succeeded"], summary["failed"]) == ("finished", 12, 12, 0)
    assert [(v["release_id"], v["cells"], v["succeeded"]) for v in summary["variants"]] == [
        (setup["first"].pk, 6, 6), (setup["second"].pk, 6, 6)]
    progress = lines[:-1]
    assert progress and all(line["type"] == "experiment.progress" for line in progress)
    assert [line["done"] for line in progress] == sorted(line["done"] for line in progress)
    assert progress[-1]["done"] == 12
    experiment = Experiment.objects.get()
    assert (experiment.name, experiment.repeats, experiment.concurrency) == ("cli", 2, 3)
    assert Run.objects.count() == fake_llm.stats()["chat_requests"] == 12  # one run, one call per cell


def test_a_constant_mapping_and_the_progress_lines_without_json(setup) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run_experiment(*setup["args"], "--map", "topic==owls")
    assert code == 0, err
    assert {run.inputs["topic"] for run in Run.objects.all()} == {"owls"}
    assert "3/3 done · 0 failed · 0 running · 0 queued" in out and "finished" in out
    assert f"r{setup['first'].number}: 3/3 succeeded (100%)" in out
    assert "Experiment" in err and "3 cells" in err


def test_failed_cells_exit_1(setup, fake_llm) -> None:  # type: ignore[no-untyped-def]
    fake_llm.fail_next({"status": 500})
    code, out, err = run_experiment(*setup["args"], "--concurrency", "1", "--json")
    summary = _json_lines(out)[-1]
    assert (code, summary["succeeded"], summary["failed"]) == (1, 2, 1)
    assert "1 failed cell" in err


def test_a_cancelled_experiment_exits_2_and_attaching_drives_an_existing_one(setup, fake_llm) -> None:  # type: ignore[no-untyped-def]
    experiment = start_experiment(setup["workflow"], setup["version"], [setup["first"]])
    experiment_cancel(experiment=experiment)
    code, out, err = run_experiment("--experiment", str(experiment.pk), "--json")
    assert "cancelled" in err
    assert (code, _json_lines(out)[-1]["status"]) == (2, "cancelled")
    assert fake_llm.stats()["chat_requests"] == 0
    fresh = start_experiment(setup["workflow"], setup["version"], [setup["second"]])
    code, out, _ = run_experiment("--experiment", str(fresh.pk), "--json")
    assert (code, _json_lines(out)[-1]["succeeded"]) == (0, 3)


def test_the_budget_stops_it_with_exit_2(setup) -> None:  # type: ignore[no-untyped-def]
    # $1 per thousand tokens each way: a call costs about a cent; the cap allows two or three.
    price_save(Price(model="gpt-4o-mini", match="exact", effective_from=timezone.now() - datetime.timedelta(days=1),
                     input_per_million=Decimal(1000), output_per_million=Decimal(1000)))
    version = make_dataset_version(20, name="many")
    code, out, err = run_experiment("--workflow", "answer", "--dataset", "many", "--variant",
                                    f"release:{setup['first'].pk}", "--concurrency", "1", "--budget", "0.03",
                                    "--currency", "USD", "--json")
    summary = _json_lines(out)[-1]
    assert (code, summary["status"]) == (2, "budget"), err
    assert summary["skipped"] > 0 and summary["budget"] == "$0.0300"
    assert Experiment.objects.get().dataset_version == version


def _other_workflow_release_id(fake_llm) -> int:  # type: ignore[no-untyped-def]
    from releases.services import release_cut

    payload = make_payload("other", make_endpoint(fake_llm.base_url, name="elsewhere"),
                           [("user", make_block("other-prompt", "Say {{ topic }}"))])
    return release_cut(workflow=make_workflow("other", [("answer", payload)]))[0].pk


BAD_OPTIONS = [
    (["--map", "topic=subject"], "--map topic: The dataset version has no column “subject”"),
    (["--map", "topic"], "--map: “topic” is neither"),
    (["--variant", "release:x"], "--variant: “release:x” is none of"),
    (["--variant", "OTHER"], "--variant #2: Release"),
    (["--repeats", "0"], "--repeats: Must be from 1 to 100."),
    (["--concurrency", "100000"], "--concurrency: Must be from 1 to"),
    (["--version", "4"], "--version: the dataset “topics” has no version 4."),
    (["--budget", "lots", "--currency", "USD"], "--budget: variants[0]: “lots” is not an amount of money."),
    (["--experiment", "1"], "--experiment attaches to an existing experiment: leave out --workflow."),
]


@pytest.mark.parametrize(("extra", "message"), BAD_OPTIONS, ids=[" ".join(extra) for extra, _ in BAD_OPTIONS])
def test_bad_options_are_a_command_error_naming_the_option_and_nothing_runs(setup, fake_llm, extra: list[str],  # type: ignore[no-untyped-def]
                                                                            message: str) -> None:
    extra = [f"release:{_other_workflow_release_id(fake_llm)}" if item == "OTHER" else item for item in extra]
    with pytest.raises(CommandError) as error:
        run_experiment(*setup["args"], *extra)
    assert message in str(error.value)
    assert (Experiment.objects.count(), Cell.objects.count(), Run.objects.count()) == (0, 0, 0)


def test_missing_and_unknown_names_are_command_errors() -> None:
    for args, message in ((["--dataset", "topics", "--variant", "current"], "--workflow: name the workflow"),
                          (["--workflow", "nope", "--dataset", "topics", "--variant", "current"],
                           "--workflow: there is no workflow named “nope”."),
                          (["--experiment", "12345"], "--experiment: there is no experiment 12345.")):
        with pytest.raises(CommandError, match=message):
            run_experiment(*args)


def test_the_progress_bar_is_redrawn_in_place_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    event = {"status": "running", "cells": 8, "done": 2, "failed": 1, "running": 2, "queued": 4,
             "cells_per_second": 1.5, "eta_seconds": 75, "cost": "$0.02", "budget": "$1.00"}
    assert progress_line(event, width=8) == ("[##......] 2/8 done · 1 failed · 2 running · 4 queued · 1.5 cells/s · "
                                             "ETA 1:15 · $0.02 of $1.00")
    terminal = Terminal()
    view = ProgressView(OutputWrapper(terminal), json_lines=False)
    view.show(event)
    view.show({**event, "status": "finished", "done": 8, "queued": 0, "running": 0}, final=True)
    drawn = terminal.getvalue()
    assert drawn.startswith("\r[##") and drawn.count("\r") == 2 and drawn.endswith("finished · $0.02 of $1.00\x1b[K\n")


def test_export_experiment_writes_csv_and_jsonl_to_a_file_or_stdout(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    experiment = start_experiment(setup["workflow"], setup["version"], [setup["first"], setup["second"]], repeats=2)
    drive_to_end(experiment.pk)
    target = tmp_path / "out.csv"
    call_command("export_experiment", str(experiment.pk), "--output", str(target), stderr=io.StringIO())
    rows = list(csv.reader(io.StringIO(target.read_text())))
    assert len(rows) == 1 + 6 and rows[0][:5] == ["position", "row_id", "repeat", "topic", "expected"]
    names = [variant.name for variant in experiment.variants.order_by("position")]
    assert {f"{name}.output" for name in names} <= set(rows[0])
    out = io.StringIO()
    call_command("export_experiment", str(experiment.pk), "--format", "jsonl", stdout=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["position"], line["repeat"]) for line in lines] == [(p, r) for p in range(3) for r in range(2)]
    assert all(line["variants"][name]["status"] == "succeeded" for line in lines for name in names)
    with pytest.raises(CommandError, match="--format"):
        call_command("export_experiment", str(experiment.pk), "--format", "xml")
    with pytest.raises(CommandError, match="--output"):
        call_command("export_experiment", str(experiment.pk), "--output", str(tmp_path / "missing" / "x.csv"))


def test_ctrl_c_cancels_the_experiment_and_exits_2(setup, fake_llm) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.servers import ROOT, shared_database_url

    fake_llm.control(latency_ms=5000)
    make_dataset_version(10, name="slow")
    env = {**os.environ, "DATABASE_URL": shared_database_url(), "DEBUG": "1"}
    process = subprocess.Popen([sys.executable, "manage.py", "run_experiment", "--workflow", "answer", "--dataset",
                                "slow", "--variant", f"release:{setup['first'].pk}", "--concurrency", "2", "--json"],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while fake_llm.stats()["chat_requests"] < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # until both cells' calls are in flight
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 2, err
    assert "cancelled" in err
    assert _json_lines(out)[-1]["status"] == "cancelled"
    experiment = Experiment.objects.get()
    assert (experiment.status, experiment.cancelled, experiment.succeeded) == ("cancelled", 10, 0)
    assert fake_llm.stats()["chat_requests"] == 2


def test_fail_under_gates_on_each_variants_pass_rate_with_judges_run_here(setup, fake_llm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Release A's prompt says "briefly", B's "in detail": the fake model echoes prompt words, so only A passes.
    checks = tmp_path / "checks.json"
    checks.write_text(json.dumps([{"type": "icontains", "value": "briefly"},
                                  {"type": "llm-rubric", "value": "Answers about {{ topic }}"}]))
    call_command("seed_judges", endpoint=setup["workflow"].steps.get().payload.endpoint.name, stdout=io.StringIO())
    both = [*setup["args"], "--variant", f"release:{setup['second'].pk}", "--assertions", f"@{checks}"]
    code, out, err = run_experiment(*both, "--fail-under", "0.9", "--json")
    summary = _json_lines(out)[-1]
    rates = [v["scores"]["pass_rate"] for v in summary["variants"]]
    outputs_say_briefly = [any("briefly" in run.output.lower() for run in Run.objects.filter(release_id=release.pk))
                           for release in (setup["first"], setup["second"])]
    assert rates == [1.0 if says else 0.0 for says in outputs_say_briefly]
    assert code == (3 if not all(outputs_say_briefly) else 0), err
    assert "Pass rate under 0.9" in err or code == 0
    # The judges ran in this process, one run of judge-rubric per succeeded cell.
    assert Run.objects.filter(workflow_name="judge-rubric", status="succeeded").count() == 6
    code, _, err = run_experiment(*both, "--fail-under", "0")
    assert code == 0, err
    with pytest.raises(CommandError, match="--fail-under"):
        run_experiment(*setup["args"], "--fail-under", "1.5")


def test_fail_under_needs_assertions(setup) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match="--fail-under"):
        call_command("run_experiment", *setup["args"], "--fail-under", "0.5", stdout=io.StringIO(), stderr=io.StringIO())
