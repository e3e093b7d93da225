"""Serializers with fields built once give exactly what DRF's own representation gives."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework import serializers

from runs import selectors
from runs.models import Response, Run
from runs.serializers import ResponseSerializer, RunListSerializer, RunSerializer
from tests.factories import make_chain, make_endpoint, make_release

pytestmark = pytest.mark.django_db


def drf_representation(serializer_class, instance):  # type: ignore[no-untyped-def]
    """DRF's own loop over freshly built fields, as without FieldsBuiltOnceMixin."""
    return serializers.ModelSerializer.to_representation(serializer_class(instance), instance)


@pytest.fixture
def finished_run(user) -> Run:  # type: ignore[no-untyped-def]
    workflow = make_chain(make_endpoint())
    run = Run.objects.create(
        workflow=workflow, workflow_name=workflow.name, inputs={"topic": "tides"}, status="succeeded",
        release=make_release(workflow, {"steps": [{"index": 0, "output_key": "outline", "payload": {"name": "p", "stream": True}}]}),
        created_by=user, started_at=timezone.now(), finished_at=timezone.now(), output="done", output_json={"a": [1]},
        step_count=2, next_step=2, prompt_tokens=3, completion_tokens=4)
    first = Response.objects.create(run=run, index=0, output_key="outline", payload_name="p", status="succeeded",
                                    messages=[{"role": "user", "content": "hi"}], attempts=[{"attempt": 1, "ok": True}],
                                    ttft_ms=None, output_json=None)
    Response.objects.create(run=run, index=1, output_key="summary", payload_name="p", status="copied", copied_from=first,
                            ttft_ms=12, output_json={"k": "v"}, error="")
    return run


def test_the_run_serializers_match_drfs_own_representation(finished_run: Run) -> None:
    run = selectors.run_detail(finished_run.pk)
    expected = {**drf_representation(RunListSerializer, run),
                "steps": [{"index": 0, "output_key": "outline", "payload": "p", "stream": True, "needs": [],
                           "when": "", "for_each": "", "payload_version": None, "block_versions": []}],  # no release
                "responses": [drf_representation(ResponseSerializer, r) for r in run.responses.all()]}
    assert RunSerializer(run).data == expected
    assert expected["created_by"] == finished_run.created_by_id and expected["responses"][1]["copied_from"] is not None
    assert RunListSerializer([run, run], many=True).data == [drf_representation(RunListSerializer, run)] * 2


def test_run_detail_reads_what_the_orm_reads(finished_run: Run) -> None:
    fast = selectors.run_detail(finished_run.pk)
    orm = selectors.run_detail_queryset().get(pk=finished_run.pk)
    fields = [f.attname for f in Run._meta.concrete_fields]
    assert [getattr(fast, f) for f in fields] == [getattr(orm, f) for f in fields]
    assert not fast._state.adding
    with CaptureQueriesContext(connection) as queries:
        responses = list(fast.responses.all())
        assert all(r.run is fast for r in responses)
    assert len(queries) == 0
    with CaptureQueriesContext(connection) as queries:  # its release came with it
        release = fast.release
    assert len(queries) == 0
    release_fields = [f.attname for f in type(release)._meta.concrete_fields]
    assert [getattr(release, f) for f in release_fields] == [getattr(orm.release, f) for f in release_fields]
    response_fields = [f.attname for f in Response._meta.concrete_fields]
    assert [[getattr(r, f) for f in response_fields] for r in responses] == \
        [[getattr(r, f) for f in response_fields] for r in orm.responses.all()]
    with pytest.raises(Run.DoesNotExist):
        selectors.run_detail(finished_run.pk + 1000)
