"""The hot-path SQL helpers give what the ORM gives, on the real database."""
import contextlib
import datetime

import pytest
from django.db.models import F
from django.utils import timezone

from core.sql import CompiledValues, insert_copies, insert_instance, update_rows
from runs.models import Response, ResponseStatus, Run, RunStatus
from tests.factories import make_chain, make_endpoint, make_release, make_run

pytestmark = pytest.mark.django_db

_runs_of = CompiledValues(lambda workflow_id, statuses: Run.objects.filter(workflow_id=workflow_id, status__in=statuses)
                          .order_by("id").values("id", "status", "inputs", "output_json", "cancel_requested",
                                                 "started_at", "workflow__name"))


def _run(workflow, **fields) -> Run:  # type: ignore[no-untyped-def]
    return make_run(workflow=workflow, workflow_name=workflow.name, **fields)


def test_compiled_values_match_the_orm_with_new_arguments_and_list_lengths() -> None:
    workflow = make_chain(make_endpoint())
    other = make_chain(make_endpoint(name="other"), name="other")
    started = timezone.now().replace(microsecond=0)
    a = _run(workflow, inputs={"topic": "tides"}, output_json={"n": [1, 2]}, started_at=started)
    b = _run(workflow, status=RunStatus.RUNNING, cancel_requested=True)
    _run(other, status=RunStatus.RUNNING)
    orm = list(Run.objects.filter(workflow_id=workflow.pk, status__in=["queued", "running"]).order_by("id")
               .values("id", "status", "inputs", "output_json", "cancel_requested", "started_at", "workflow__name"))
    rows = _runs_of.rows(workflow.pk, ["queued", "running"])
    assert rows == orm
    # Converters ran: JSON decoded, booleans and datetimes typed as the fields say.
    assert rows[0]["inputs"] == {"topic": "tides"} and rows[0]["output_json"] == {"n": [1, 2]}
    assert rows[0]["started_at"] == started and rows[1]["cancel_requested"] is True
    assert [r["id"] for r in _runs_of.rows(workflow.pk, ["running"])] == [b.pk]
    assert [r["id"] for r in _runs_of.rows(workflow.pk, ("queued",))] == [a.pk]
    assert _runs_of.rows(workflow.pk + 1000, ["queued", "running", "failed"]) == []


def test_a_compiled_query_must_use_every_argument() -> None:
    ignores_its_argument = CompiledValues(lambda run_id: Run.objects.values("id"))
    with pytest.raises(TypeError, match="every argument"):
        ignores_its_argument.rows(1)


def test_insert_instance_applies_defaults_auto_now_and_json_like_save() -> None:
    workflow = make_chain(make_endpoint())
    before = timezone.now()
    run = Run(workflow=workflow, workflow_name=workflow.name, inputs={"topic": "é"}, release=make_release(workflow, {"steps": []}))
    insert_instance(run)
    assert run.pk is not None and not run._state.adding
    stored = Run.objects.get(pk=run.pk)
    assert stored.inputs == {"topic": "é"} and stored.status == RunStatus.QUEUED and stored.output_json is None
    assert before <= stored.created_at <= timezone.now() and stored.created_at == run.created_at
    second = Response(run=run, index=0, output_key="outline", payload_name="p", status="succeeded",
                      output_json=[1, "two"], attempts=[{"ok": True}])
    insert_instance(second)
    assert Response.objects.get(pk=second.pk).output_json == [1, "two"]


def test_insert_instance_leaves_the_row_bulk_create_leaves_for_every_kind_of_value() -> None:
    """Values stored as they are (None, and an int, str or bool in a field that keeps it) and the ones
    their field prepares (JSON, datetimes, decimals, choices, keys) come out as the plain ORM's."""
    workflow = make_chain(make_endpoint())
    run = _run(workflow)
    stamp = timezone.now()

    def response(index: int) -> Response:
        return Response(run=run, index=index, output_key="o", payload_name="p", model="m", messages=[{"role": "user"}],
                        request_params={"temperature": 0.5}, output="é", output_json={"n": [1, None]},
                        finish_reason="stop", prompt_tokens=7, completion_tokens=9, tokens_estimated=True,
                        reasoning_tokens=None, cached_tokens=0, latency_ms=120, ttft_ms=None, attempts=[{"ok": True}],
                        status=ResponseStatus.SUCCEEDED, cost_nano=2**40, cost_currency="USD", cost_source="computed",
                        price_id=3, cache_stored_at=stamp, item_value=["x", 1], item=index)

    fast, plain = response(0), response(1)
    insert_instance(fast)
    Response.objects.bulk_create([plain])
    fields = [f.attname for f in Response._meta.concrete_fields if f.attname not in ("id", "created_at", "item", "index")]
    assert Response.objects.filter(pk=fast.pk).values(*fields).get() == \
        Response.objects.filter(index=1).values(*fields).get()


def test_insert_copies_leaves_the_rows_bulk_create_leaves() -> None:
    workflow = make_chain(make_endpoint())
    release = make_release(workflow, {"steps": []})
    inputs = [{"topic": f"é{i}", "n": [i]} for i in range(3)]
    common = {"workflow": workflow, "workflow_name": workflow.name, "release": release, "label": "prod", "step_count": 1,
              "budget_nano": 5, "budget_currency": "USD"}
    before = timezone.now()
    ids = insert_copies(Run(**common), {"inputs": inputs})
    plain = Run.objects.bulk_create([Run(**common, inputs=value) for value in inputs])
    assert ids == sorted(ids) and len(ids) == 3
    fields = [f.attname for f in Run._meta.concrete_fields if f.attname not in ("id", "created_at")]
    stored = list(Run.objects.filter(pk__in=ids).order_by("id").values(*fields))
    assert stored == list(Run.objects.filter(pk__in=[r.pk for r in plain]).order_by("id").values(*fields))
    assert [row["inputs"] for row in stored] == inputs
    assert all(before <= r.created_at <= timezone.now() for r in Run.objects.filter(pk__in=ids))
    assert insert_copies(Run(**common), {"inputs": []}) == []  # nothing to insert: no statement


def test_update_rows_is_a_compare_and_set() -> None:
    workflow = make_chain(make_endpoint())
    run = _run(workflow, lease_owner="me", lease_version=3, prompt_tokens=5)
    until = timezone.now() + datetime.timedelta(seconds=30)
    fence = {"id": run.pk, "lease_owner": "me", "lease_version": 3, "lease_expires_at": None}
    assert update_rows(Run, where=fence, values={"lease_expires_at": until, "output_json": {"a": 1}},
                       increments={"prompt_tokens": 7}) == 1
    run.refresh_from_db()
    assert run.lease_expires_at == until and run.output_json == {"a": 1} and run.prompt_tokens == 12
    # The row no longer matches (its lease_expires_at is set, the version differs): nothing changes.
    assert update_rows(Run, where=fence, values={"output": "x"}) == 0
    assert update_rows(Run, where={**fence, "lease_expires_at": until, "lease_version": 4}, values={"output": "x"}) == 0
    assert update_rows(Run, where={**fence, "lease_expires_at": until}, values={"output": "x"}) == 1
    assert Run.objects.get(pk=run.pk).output == "x"


def test_update_rows_leaves_the_rows_the_orm_update_leaves() -> None:
    workflow = make_chain(make_endpoint())
    fast, orm = (_run(workflow, lease_owner="me", lease_version=3, prompt_tokens=5) for _ in range(2))
    until = timezone.now().replace(microsecond=0) + datetime.timedelta(seconds=30)
    values = {"lease_expires_at": until, "output_json": {"a": [1, None]}, "status": RunStatus.RUNNING}
    assert update_rows(Run, where={"id": fast.pk, "lease_owner": "me", "lease_expires_at": None}, values=values,
                       increments={"prompt_tokens": 7}) == 1
    assert Run.objects.filter(id=orm.pk, lease_owner="me", lease_expires_at=None).update(
        **values, prompt_tokens=F("prompt_tokens") + 7) == 1
    rows = {row.pop("id"): row for row in Run.objects.filter(pk__in=[fast.pk, orm.pk]).values()}
    for row in rows.values():
        del row["created_at"]  # the two were made moments apart
    assert rows[fast.pk] == rows[orm.pk]
    assert rows[fast.pk]["prompt_tokens"] == 12 and rows[fast.pk]["output_json"] == {"a": [1, None]}


@pytest.mark.parametrize("recorded", [False, True], ids=["driver", "django-cursor"])
def test_both_execution_paths_write_alike_and_raise_djangos_errors(recorded: bool) -> None:
    from django.db import IntegrityError, connection, transaction
    from django.test.utils import CaptureQueriesContext

    workflow = make_chain(make_endpoint())
    run = _run(workflow)
    recording = CaptureQueriesContext(connection) if recorded else contextlib.nullcontext()
    with recording:
        assert connection.queries_logged is recorded  # which path runs
        insert_instance(Response(run=run, index=0, output_key="a", payload_name="p", status="succeeded"))
        assert update_rows(Run, where={"id": run.pk}, values={"output": "o"}) == 1
        assert _runs_of.rows(workflow.pk, ["queued"])[0]["id"] == run.pk
    if recorded:
        assert len(recording) == 3
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_instance(Response(run=run, index=0, output_key="b", payload_name="p", status="succeeded"))
    assert Run.objects.get(pk=run.pk).output == "o" and Response.objects.filter(run=run).count() == 1
