"""set_prefetched() leaves an instance as prefetch_related() does; prefetched() reads what it stored."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.internals.django_prefetch import prefetched, set_prefetched
from runs.models import Response, Run
from tests.factories import make_chain, make_endpoint, make_run

pytestmark = pytest.mark.django_db


def _run_with_responses() -> Run:
    workflow = make_chain(make_endpoint())
    run = make_run(workflow=workflow, workflow_name=workflow.name)
    for index, key in enumerate(["outline", "paragraph"]):
        Response.objects.create(run=run, index=index, output_key=key)
    return run


def test_prefetch_related_stores_what_set_prefetched_stores() -> None:
    """The shape of Django's prefetch cache: if this fails, the internal changed and the helper must follow."""
    run = Run.objects.prefetch_related("responses").get(pk=_run_with_responses().pk)
    stored = run._prefetched_objects_cache["responses"]
    assert stored._prefetch_done is True
    assert [response.pk for response in stored._result_cache] == [r.pk for r in Response.objects.filter(run=run).order_by("index")]
    assert prefetched(run, "responses") is stored


def test_set_prefetched_rows_are_what_the_relation_gives_without_a_query() -> None:
    pk = _run_with_responses().pk
    orm = list(Run.objects.prefetch_related("responses").get(pk=pk).responses.all())
    run = Run.objects.get(pk=pk)
    rows = list(Response.objects.filter(run_id=pk).order_by("index"))
    set_prefetched(run, "responses", rows)
    with CaptureQueriesContext(connection) as queries:
        again = list(run.responses.all())
        count = run.responses.count()
    assert len(queries) == 0
    assert again == orm and [r.output_key for r in again] == ["outline", "paragraph"]
    assert count == 2
    assert prefetched(run, "responses") is not None


def test_prefetched_is_none_when_nothing_was_prefetched() -> None:
    run = Run.objects.get(pk=_run_with_responses().pk)
    assert prefetched(run, "responses") is None
