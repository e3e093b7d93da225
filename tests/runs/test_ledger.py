"""Each fast path of the step ledger does what its plain-ORM equivalent does, row for row.

The ledger writes its per-step statements through orchestrator/sql.py (and the claim's
compare-and-set as SQL); these tests run each one and its ORM equivalent on twin rows.
"""
import contextlib
import datetime
from typing import Any

import pytest
from django.db import connection
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.sql import insert_instance, update_rows
from runs.engine import ledger
from runs.engine.ledger import Claim, StepResult
from runs.models import ACTIVE_STATUSES, Response, Run, RunStatus
from tests.factories import make_chain, make_endpoint, make_release
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
# Far enough ahead to stay live however long after collection a test runs (some use the real clock).
LIVE = NOW + datetime.timedelta(days=1)
EXPIRED = NOW - datetime.timedelta(seconds=1)
STARTED = NOW - datetime.timedelta(minutes=5)


def _twins(**fields: Any) -> tuple[Run, Run]:
    workflow = Workflow.objects.first() or make_chain(make_endpoint())
    return tuple(Run.objects.create(workflow=workflow, workflow_name=workflow.name, step_count=3,  # type: ignore[return-value]
                                    release=make_release(workflow, {"steps": []}), **fields) for _ in range(2))


def _row(run: Run, *, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    run.refresh_from_db()
    return {k: v for k, v in model_to_dict(run).items() if k not in ("id", *ignore)}


# (row state, step index and lease version the claimer read)
CLAIM_CASES = {
    "free": ({}, 0, 0),
    "free, started before": ({"started_at": STARTED, "next_step": 1, "lease_version": 2}, 1, 2),
    "held by a live lease": ({"lease_owner": "other", "lease_expires_at": LIVE, "lease_version": 1}, 0, 1),
    "lease expired": ({"lease_owner": "other", "lease_expires_at": EXPIRED, "lease_version": 1}, 0, 1),
    "lease expires this very moment": ({"lease_owner": "other", "lease_expires_at": NOW, "lease_version": 1}, 0, 1),
    "cancel requested": ({"cancel_requested": True}, 0, 0),
    "another version": ({"lease_version": 4}, 0, 3),
    "another step": ({"next_step": 2}, 1, 0),
    "cancelling": ({"status": RunStatus.CANCELLING}, 0, 0),
    "finished": ({"status": RunStatus.SUCCEEDED}, 0, 0),
}


@pytest.mark.parametrize("running", [False, True], ids=["starting", "running"])
@pytest.mark.parametrize("recorded", [False, True], ids=["driver", "django-cursor"])
@pytest.mark.parametrize("case", list(CLAIM_CASES))
def test_the_claims_compare_and_set_matches_its_orm_equivalent(case: str, recorded: bool, running: bool) -> None:
    fields, index, version = CLAIM_CASES[case]
    if running:  # the form that leaves status alone: the run was read running, and must still be
        fields = {"status": RunStatus.RUNNING, "started_at": STARTED, **fields}
    fast, orm = _twins(**fields)
    with CaptureQueriesContext(connection) if recorded else contextlib.nullcontext():
        claimed = ledger._claim_cas(run_id=fast.pk, index=index, version=version, owner="me", now=NOW, running=running)
    assert claimed == ledger._claim_cas_orm(run_id=orm.pk, index=index, version=version, owner="me", now=NOW,
                                            running=running)
    # The new lease's expiry is "now + RUNS_LEASE_SECONDS" at each call: compared apart.
    assert _row(fast, ignore=("lease_expires_at",)) == _row(orm, ignore=("lease_expires_at",))
    if claimed:
        assert fast.lease_expires_at > NOW and orm.lease_expires_at > NOW
        assert fast.status == RunStatus.RUNNING and fast.started_at is not None
    else:
        assert fast.lease_expires_at == orm.lease_expires_at == fields.get("lease_expires_at")
    free = case in ("free", "free, started before", "lease expired", "cancelling")
    if running and case == "cancelling":  # read running, cancelling now: someone else changed it, no claim
        free = False
    assert claimed == (1 if free else 0)


def test_a_running_runs_claim_writes_no_status() -> None:
    """A step's claim of a running run leaves `status` out of its UPDATE, so the status indexes and triggers stay still."""
    run, _ = _twins(status=RunStatus.RUNNING, started_at=STARTED, next_step=1, lease_version=2)
    with CaptureQueriesContext(connection) as queries:
        assert ledger._claim_cas(run_id=run.pk, index=1, version=2, owner="me", now=NOW, running=True) == 1
    update = queries.captured_queries[-1]["sql"]
    assert update.startswith("UPDATE") and '"status" =' not in update.split("WHERE")[0]


def test_lease_is_free_at_the_boundary() -> None:
    held, _ = _twins(lease_owner="other", lease_expires_at=NOW)
    assert not Run.objects.filter(ledger.lease_is_free(NOW), pk=held.pk).exists()
    assert Run.objects.filter(ledger.lease_is_free(NOW + datetime.timedelta(microseconds=1)), pk=held.pk).exists()


def test_the_claims_compiled_reads_match_their_querysets() -> None:
    run, _ = _twins(inputs={"topic": "tides"}, started_at=STARTED, lease_owner="me", lease_expires_at=LIVE)
    for index, output_json in enumerate([None, {"n": [1]}, None]):
        Response.objects.create(run=run, index=index, output_key=f"k{index}", payload_name="p", status="succeeded",
                                output=f"text {index}", output_json=output_json, reasoning="why" if index else "")
    assert ledger._run_for_claim.rows(run.pk) == list(ledger._run_for_claim.build(run.pk))
    assert ledger._run_for_claim.rows(run.pk + 1000) == list(ledger._run_for_claim.build(run.pk + 1000)) == []
    for index in (0, 1, 2):
        assert (ledger._earlier_responses.rows(run.pk, index)
                == list(ledger._earlier_responses.build(run.pk, index)))
    assert len(ledger._earlier_responses.rows(run.pk, 1)) == 2


def _commit_fences(run: Run) -> dict[str, Any]:
    return {"id": run.pk, "lease_owner": "me", "lease_version": 2, "next_step": 1}


@pytest.mark.parametrize("cancel_requested", [False, True])
def test_the_commits_advance_matches_its_orm_equivalent(cancel_requested: bool) -> None:
    fast, orm = _twins(lease_owner="me", lease_version=2, next_step=1, lease_expires_at=LIVE, prompt_tokens=5,
                       cancel_requested=cancel_requested)
    statement = {"values": {"next_step": 2, "lease_version": 3, "lease_expires_at": LIVE + datetime.timedelta(seconds=9)},
                 "increments": {"prompt_tokens": 7, "completion_tokens": 20, "latency_ms": 900}}
    advanced = update_rows(Run, where={**_commit_fences(fast), "cancel_requested": False}, **statement)
    assert advanced == ledger._update_rows_orm(Run, where={**_commit_fences(orm), "cancel_requested": False}, **statement)
    assert advanced == (0 if cancel_requested else 1)
    assert _row(fast) == _row(orm)


@pytest.mark.parametrize("lease_owner", ["me", "a worker that took it over"])
def test_the_commits_final_release_matches_its_orm_equivalent(lease_owner: str) -> None:
    fast, orm = _twins(lease_owner=lease_owner, lease_version=2, next_step=1, lease_expires_at=LIVE)
    statement = {"values": {"lease_owner": "", "lease_expires_at": None, "next_step": 2, "status": RunStatus.SUCCEEDED,
                            "finished_at": NOW, "output": "done", "output_json": {"a": [1, 2]}},
                 "increments": {"prompt_tokens": 7, "completion_tokens": 20, "latency_ms": 900}}
    released = update_rows(Run, where=_commit_fences(fast), **statement)
    assert released == ledger._update_rows_orm(Run, where=_commit_fences(orm), **statement)
    assert released == (1 if lease_owner == "me" else 0)
    assert _row(fast) == _row(orm)


def test_the_commits_response_insert_matches_the_orms() -> None:
    fast, orm = _twins()
    step = {"output_key": "outline", "payload": {"name": "outline", "endpoint_name": "local", "model": "m",
                                                 "params": {"temperature": 0.2}}}
    result = StepResult(status="succeeded", messages=[{"role": "user", "content": "é"}], output="text",
                        output_json={"k": 1}, reasoning="why", reasoning_tokens=3, cached_tokens=None,
                        finish_reason="stop", prompt_tokens=5, completion_tokens=7, latency_ms=12, ttft_ms=4,
                        attempts=[{"ok": True}])
    rows = []
    for run, write in ((fast, insert_instance), (orm, lambda r: Response.objects.bulk_create([r]))):
        claim = Claim(run_id=run.pk, index=0, lease_version=1, owner="me", steps=[step], variables={},
                      endpoint=None, first=True)
        write(ledger.step_response(claim, result))
        row = Response.objects.filter(run=run).values().get()
        rows.append({k: v for k, v in row.items() if k not in ("id", "run_id", "created_at")})
    assert rows[0] == rows[1]
    assert rows[0]["output_json"] == {"k": 1} and rows[0]["cached_tokens"] is None


def test_the_sweeps_find_active_runs_nobody_holds_oldest_first() -> None:
    free, expired = _twins(lease_owner="other", lease_expires_at=EXPIRED)
    Run.objects.filter(pk=free.pk).update(lease_owner="", lease_expires_at=None)
    _held, finished = _twins(lease_owner="other", lease_expires_at=LIVE)
    Run.objects.filter(pk=finished.pk).update(status=RunStatus.FAILED, lease_owner="")
    assert ledger.runs_unheld(limit=10) == sorted([free.pk, expired.pk])
    assert ledger.runs_unheld(limit=1) == [min(free.pk, expired.pk)]
    assert set(ACTIVE_STATUSES) >= {Run.objects.get(pk=pk).status for pk in ledger.runs_unheld(limit=10)}


def test_a_run_inserted_claimed_is_what_an_insert_then_a_claim_leaves(settings) -> None:
    """ledger.claimed_at_insert + claim_inserted (the experiment driver's fast path) against run_start's
    insert followed by step_claim: the same row afterwards, and the same claim."""
    from core.sql import insert_copies
    from runs.services import run_start

    workflow = make_chain(make_endpoint())
    plain = run_start(workflow=workflow, inputs={"topic": "tides"}, user=None, budget=None)
    orm_claim = ledger.step_claim(run_id=plain.pk, owner="owner-a")
    assert isinstance(orm_claim, Claim)
    template = Run(workflow=workflow, workflow_name=workflow.name, release_id=plain.release_id,
                   step_count=plain.step_count, budget_nano=None, budget_currency=None)
    for name, value in ledger.claimed_at_insert(owner="owner-b", now=timezone.now()).items():
        setattr(template, name, value)
    [run_id] = insert_copies(template, {"inputs": [{"topic": "tides"}]})
    fast_claim = ledger.claim_inserted(run_id=run_id, owner="owner-b", snapshot=plain.release.snapshot,
                                       inputs={"topic": "tides"}, budget_nano=None, budget_currency=None)
    assert isinstance(fast_claim, Claim)
    same = ("index", "lease_version", "steps", "variables", "endpoint", "first", "rate", "budget")
    assert {k: getattr(fast_claim, k) for k in same} == {k: getattr(orm_claim, k) for k in same}
    fields = ["status", "next_step", "lease_version", "inputs", "release_id", "step_count", "cancel_requested",
              "budget_nano", "budget_currency", "label", "workflow_id"]
    assert Run.objects.filter(pk=run_id).values(*fields).get() == Run.objects.filter(pk=plain.pk).values(*fields).get()
    fast, slow = Run.objects.get(pk=run_id), Run.objects.get(pk=plain.pk)
    assert (fast.lease_owner, slow.lease_owner) == ("owner-b", "owner-a")
    assert fast.started_at is not None and fast.lease_expires_at is not None
    # Its step commits like any claimed step's (the fence holds: version 1, this owner).
    outcome, _ = ledger.step_commit(claim=fast_claim, result=StepResult(status="succeeded", output="x"))
    assert outcome is True and Run.objects.get(pk=run_id).next_step == 1
