"""Full-text search of finished runs (FTS5 on SQLite, a GIN index on PostgreSQL), kept by the database."""
import datetime

import pytest
from django.utils import timezone

from runs.models import Run, RunStatus
from runs.search import runs_search
from tests.factories import make_chain, make_endpoint, make_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def workflow():
    return make_chain(make_endpoint())


def found(text: str) -> set[int]:
    return set(runs_search(Run.objects.all(), text).values_list("pk", flat=True))


def test_words_of_inputs_outputs_errors_and_the_workflow_name_find_finished_runs(workflow):
    tides = make_run(workflow=workflow, workflow_name="article", status=RunStatus.SUCCEEDED,
                     inputs={"topic": "Spring tides"}, output="The moon pulls the oceans.")
    broken = make_run(workflow=workflow, workflow_name="article", status=RunStatus.FAILED,
                      inputs={"topic": "volcanoes"}, error="Step 2 (paragraph) failed: rate limited")
    running = make_run(workflow=workflow, workflow_name="article", status=RunStatus.RUNNING,
                       inputs={"topic": "tides again"})
    assert found("tides") == {tides.pk}  # the running one is indexed when it finishes
    assert found("tide") == {tides.pk}  # a word prefix
    assert found("moon OCEANS") == {tides.pk}  # every word, any case
    assert found("moon volcanoes") == set()
    assert found("rate limit") == {broken.pk}
    assert found("article") == {tides.pk, broken.pk}
    assert found(str(running.pk)) == {running.pk}  # a number is also an id
    assert found('" OR * ') == set() and found("") == set()  # no words, no match (and no syntax error)
    Run.objects.filter(pk=running.pk).update(status=RunStatus.SUCCEEDED, output="done")
    assert found("tides") == {tides.pk, running.pk}


def test_a_deleted_run_leaves_the_index_and_a_changed_one_is_found_by_its_new_text(workflow):
    run = make_run(workflow=workflow, workflow_name="article", status=RunStatus.SUCCEEDED, output="first words")
    Run.objects.filter(pk=run.pk).update(output="second thoughts")
    assert found("first") == set() and found("second") == {run.pk}
    Run.objects.filter(pk=run.pk).delete()
    assert found("second") == set()


def test_the_api_searches_filters_a_day_and_pages_by_cursor_without_counting(api, workflow):
    today = timezone.localdate()
    noon = timezone.make_aware(datetime.datetime.combine(today, datetime.time(12)))
    for n in range(5):
        run = make_run(workflow=workflow, workflow_name="article", status=RunStatus.SUCCEEDED, output=f"tides {n}")
        Run.objects.filter(pk=run.pk).update(created_at=noon - datetime.timedelta(days=n % 2))
    body = api.get("/api/runs/?search=tides&page_size=2").json()
    assert "count" not in body and len(body["results"]) == 2 and body["next"]
    seen = [r["id"] for r in body["results"]]
    while body["next"]:
        body = api.get(body["next"]).json()
        seen += [r["id"] for r in body["results"]]
    assert len(seen) == len(set(seen)) == 5
    assert seen == sorted(seen, key=lambda pk: (-Run.objects.get(pk=pk).created_at.timestamp(), -pk))
    on_the_day = api.get(f"/api/runs/?date={today.isoformat()}").json()["results"]
    assert len(on_the_day) == 3
    assert api.get("/api/runs/?date=yesterday").status_code == 400
    assert api.get("/api/runs/?ordering=prompt_tokens").json()["results"]  # an unoffered ordering is ignored


def test_a_search_reaches_the_newest_matches_up_to_its_limit(workflow, monkeypatch):
    from runs import search
    monkeypatch.setattr(search, "SEARCH_LIMIT", 3)
    runs = [make_run(workflow=workflow, workflow_name="article", status=RunStatus.SUCCEEDED, output=f"tides {n}")
            for n in range(5)]
    assert found("tides") == {run.pk for run in runs[-3:]}


@pytest.mark.parametrize(("first_window", "limit"), [(1, 3), (2, 3), (4, 100), (50_000, 3)])
def test_postgresqls_search_in_windows_of_ids_finds_what_one_plain_query_finds(workflow, monkeypatch, first_window, limit):
    """The windows (runs.search) are a fast path: the same newest matches as the plain query."""
    from django.db import connection

    from runs import search
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's search (make test-distributed)")
    monkeypatch.setattr(search, "FIRST_WINDOW", first_window)
    monkeypatch.setattr(search, "SEARCH_LIMIT", limit)
    statuses = [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.RUNNING, RunStatus.BUDGET_REACHED]
    for n in range(13):
        make_run(workflow=workflow, workflow_name="article", status=statuses[n % 4],
                 output=f"tides {n}" if n % 3 else f"storms {n}")
    for words in (["tides"], ["tid"], ["storms"], ["tides", "7"], ["nothing"]):
        query = search._postgres_query(words)
        assert search._postgres_newest_matches(query) == search._postgres_newest_matches_plain(query)
    assert len(search._postgres_newest_matches(search._postgres_query(["tides"]))) == min(limit, 6)
