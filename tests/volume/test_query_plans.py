"""Every list, filter and sort the runs API offers reads an index in the order it shows: SQLite's
plan for each query on runs has no full scan of the table and no temporary B-tree for ordering."""
import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.paginators import COUNT_CAP
from runs.models import Run, RunStatus
from tests.factories import make_chain, make_endpoint, make_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def runs():
    workflow = make_chain(make_endpoint())
    for n in range(30):
        make_run(workflow=workflow, workflow_name="article", status=RunStatus.FAILED if n % 3 else RunStatus.SUCCEEDED,
                 output=f"tides {n}", latency_ms=n * 7, finished_at=timezone.now())
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return workflow


def plans(sql: str, params: tuple) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return [row[-1] for row in cursor.fetchall()]


def run_queries(client, url: str) -> list[tuple[str, list[str]]]:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    found = []
    for query in captured.captured_queries:
        sql = query["sql"]
        if sql.startswith("SELECT") and '"runs_run"' in sql.split(" WHERE ")[0].split(" FROM ")[-1]:
            # The captured SQL has its parameters inlined; SQLite plans it the same way.
            found.append((sql, plans(sql, ())))
    assert found, f"{url} read no runs"
    return found


URLS = ["/api/runs/", "/api/runs/?workflow={w}", "/api/runs/?status=failed", "/api/runs/?workflow={w}&status=failed",
        "/api/runs/?date={today}", "/api/runs/?ordering=-latency_ms", "/api/runs/?ordering=-finished_at",
        "/api/runs/?search=tides", "/api/workflows/{w}/runs/", "/api/workflows/{w}/runs/?status=failed"]


@pytest.mark.parametrize("url", URLS)
def test_each_runs_list_reads_an_index_in_order(api, runs, url):
    for sql, plan in run_queries(api, url.format(w=runs.pk, today=timezone.localdate().isoformat())):
        text = " | ".join(plan)
        if "search=" not in url:  # a search sorts its matches, at most runs.search.SEARCH_LIMIT of them
            assert "USE TEMP B-TREE FOR ORDER BY" not in text, f"{url}: sorts every row\n{sql}\n{text}"
        assert not any(line.split()[:2] == ["SCAN", "runs_run"] and "USING" not in line for line in plan), \
            f"{url}: scans the runs table\n{sql}\n{text}"


def test_the_check_sees_a_sort_without_an_index():
    sql = str(Run.objects.order_by("-prompt_tokens").query)
    assert "USE TEMP B-TREE FOR ORDER BY" in " ".join(plans(sql, ()))


def test_a_day_is_a_range_on_created_at(api, runs):
    today = timezone.localdate()
    [(sql, plan)] = [q for q in run_queries(api, f"/api/runs/?date={today}") if "LIMIT" in q[0]]
    assert "django_datetime_cast_date" not in sql and any("run_newest" in line for line in plan)
    assert datetime.date.today() - today < datetime.timedelta(days=2)


@pytest.mark.parametrize("url", ["/admin/runs/run/", "/admin/runs/run/?q=tides", "/admin/runs/run/?status__exact=failed",
                                 "/admin/runs/run/?workflow__id__exact={w}"])
def test_the_admin_runs_list_reads_indexes_and_counts_no_further_than_a_cap(admin_client, runs, url):
    for sql, plan in run_queries(admin_client, url.format(w=runs.pk)):
        text = " | ".join(plan)
        assert "USE TEMP B-TREE FOR ORDER BY" not in text, f"{url}: sorts every row\n{sql}\n{text}"
        assert "django_datetime_trunc" not in sql and "django_date_trunc" not in sql  # no date hierarchy
        # The operators' metrics count only active runs, and failures of the last hour (run_metrics).
        bounded = "('queued', 'running', 'cancelling')" in sql or '"runs_run"."finished_at" >=' in sql
        if "COUNT(" in sql and not bounded:
            assert f"LIMIT {COUNT_CAP}" in sql, f"{url}: counts every run\n{sql}"


@pytest.mark.parametrize("url", ["/runs/", "/runs/?workflow={w}&status=failed", "/runs/?q=tides", "/runs/?status=failed",
                                 "/runs/stats/?workflow={w}"])
def test_the_runs_pages_read_indexes_and_rollups(admin_client, runs, url):
    for sql, plan in run_queries(admin_client, url.format(w=runs.pk)) if "stats" not in url else []:
        text = " | ".join(plan)
        assert "USE TEMP B-TREE FOR ORDER BY" not in text, f"{url}: sorts every row\n{sql}\n{text}"
        if "COUNT(" in sql and "('queued', 'running', 'cancelling')" not in sql:
            assert f"LIMIT {COUNT_CAP}" in sql, f"{url}: counts every run\n{sql}"
    if "stats" in url:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url.format(w=runs.pk)).status_code == 200
        assert not [q["sql"] for q in captured.captured_queries if 'FROM "runs_run"' in q["sql"]]  # the rollup only
