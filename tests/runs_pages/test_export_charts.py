"""A run's JSON export (never a key), the per-step charts of a run and the per-day statistics of a workflow."""
import datetime
import json

import pytest
from django.test import Client
from django.utils import timezone

from runs.models import Response, RunStatus
from runs.selectors import workflow_daily_stats
from tests.runs_pages.conftest import PLANTED_KEY, client_with, finished_run


@pytest.mark.django_db
def test_the_export_is_a_download_with_the_run_its_steps_inputs_and_snapshot(user_client, article):
    run = finished_run(article, {"topic": "tides"}, ["An outline", "A paragraph", "A summary"])
    response = user_client.get(f"/runs/{run.pk}/export.json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"] == f'attachment; filename="run-{run.pk}-article.json"'
    document = json.loads(response.content)
    assert document["format"] == "llm-orchestrator/run" and document["version"] == 1
    assert document["run"]["id"] == run.pk and document["run"]["status"] == "succeeded"
    assert document["inputs"] == {"topic": "tides", "tone": "plain"}
    assert [s["output_key"] for s in document["snapshot"]["steps"]] == ["outline", "paragraph", "summary"]
    assert [r["output"] for r in document["responses"]] == ["An outline", "A paragraph", "A summary"]
    assert document["responses"][0]["messages"] == [{"role": "user", "content": "Step 0 about tides."}]
    page = user_client.get(f"/runs/{run.pk}/").content.decode()
    assert f'href="/runs/{run.pk}/export.json" download' in page


@pytest.mark.django_db
def test_the_export_never_contains_an_api_key(user_client, article):
    run = finished_run(article, {"topic": "tides"}, ["An outline"])
    # Even a key someone put in a payload's extra parameters is left out.
    Response.objects.filter(run=run).update(request_params={"temperature": 0.2, "api_key": PLANTED_KEY})
    body = user_client.get(f"/runs/{run.pk}/export.json").content.decode()
    assert PLANTED_KEY not in body
    assert json.loads(body)["responses"][0]["request_params"] == {"temperature": 0.2}


@pytest.mark.django_db
def test_exporting_needs_the_view_permission_and_an_existing_run(article):
    run = finished_run(article, {"topic": "tides"}, ["An outline"])
    assert Client().get(f"/runs/{run.pk}/export.json").status_code == 302
    assert client_with().get(f"/runs/{run.pk}/export.json").status_code == 403
    viewer = client_with("runs.view_run")
    assert viewer.get(f"/runs/{run.pk}/export.json").status_code == 200
    assert viewer.get("/runs/987654/export.json").status_code == 404
    assert viewer.post(f"/runs/{run.pk}/export.json").status_code == 405


@pytest.mark.django_db
def test_the_run_page_charts_latency_and_tokens_per_step_with_text_values(user_client, article):
    run = finished_run(article, {"topic": "tides"}, ["a", "b", "c"], latencies=[1500, 300, 2000])
    page = user_client.get(f"/runs/{run.pk}/").content.decode()
    assert 'id="chart-step-latency"' in page and 'id="chart-step-tokens"' in page
    assert "<title>1 outline: latency 1.50 s</title>" in page
    assert "<title>2 paragraph: latency 300 ms</title>" in page
    assert "<title>3 summary: completion 7 tokens</title>" in page
    assert 'role="img" aria-labelledby="chart-step-latency-title"' in page
    fragment = user_client.get(f"/runs/{run.pk}/charts/")
    assert fragment.status_code == 200 and "<html" not in fragment.content.decode()
    assert "1 outline: latency 1.50 s" in fragment.content.decode()
    # The tallest bar fills the plot; the others are in proportion.
    latency_chart = fragment.context["charts"][0]
    heights = [bar.rects[0].height for bar in latency_chart.bars]
    assert heights[2] == max(heights) and heights[0] == pytest.approx(heights[2] * 0.75)


@pytest.mark.django_db
def test_a_run_without_steps_says_so_instead_of_an_empty_chart(user_client, article):
    run = finished_run(article, {"topic": "tides"}, [], status=RunStatus.FAILED)
    page = user_client.get(f"/runs/{run.pk}/").content.decode()
    assert page.count("No values yet.") == 3  # latency, tokens and cost


@pytest.mark.django_db
def test_daily_stats_sum_and_average_finished_runs_per_day_and_fill_empty_days(article):
    today = timezone.localdate()
    noon = timezone.make_aware(datetime.datetime.combine(today, datetime.time(12)))
    finished_run(article, {"topic": "a"}, ["x"], latencies=[1000], created_at=noon)
    finished_run(article, {"topic": "b"}, ["x"], latencies=[3000], created_at=noon)
    finished_run(article, {"topic": "c"}, ["x", "y"], latencies=[500, 500], created_at=noon - datetime.timedelta(days=2))
    finished_run(article, {"topic": "old"}, ["x"], created_at=noon - datetime.timedelta(days=40))
    finished_run(article, {"topic": "running"}, ["x"], created_at=noon, status=RunStatus.RUNNING)
    days = workflow_daily_stats(article, days=30, today=today)
    assert len(days) == 30 and days[-1].day == today and days[0].day == today - datetime.timedelta(days=29)
    assert (days[-1].runs, days[-1].latency_ms, days[-1].avg_latency_ms) == (2, 4000, 2000)
    assert days[-1].total_tokens == 30 and days[-1].avg_tokens == 15
    assert (days[-3].runs, days[-3].total_tokens, days[-3].avg_latency_ms) == (1, 32, 1000)
    assert sum(d.runs for d in days) == 3  # not the old run, not the running one


@pytest.mark.django_db
def test_the_stats_page_shows_totals_averages_and_a_chart_per_day(user_client, article):
    finished_run(article, {"topic": "a"}, ["x"], latencies=[1000])
    finished_run(article, {"topic": "b"}, ["x"], latencies=[3000])
    response = user_client.get(f"/runs/stats/?workflow={article.pk}")
    assert response.status_code == 200
    page = response.content.decode()
    assert '<dd data-field="runs">2</dd>' in page
    assert "30 in total · 15 per run on average" in page
    assert "4.00 s in total · 2.00 s per run on average" in page
    for chart_id in ("chart-day-latency", "chart-day-latency-total", "chart-day-tokens", "chart-day-tokens-total"):
        assert f'id="{chart_id}"' in page
    today = timezone.localdate().strftime("%m-%d")
    assert f"<title>{today}: latency 2.00 s</title>" in page
    listing = user_client.get(f"/runs/?workflow={article.pk}").content.decode()
    assert f'href="/runs/stats/?workflow={article.pk}"' in listing


@pytest.mark.django_db
def test_an_unknown_workflow_is_named_next_to_the_workflow_field(user_client, article):
    for bad in ("987654", "abc", "9" * 40):
        response = user_client.get(f"/runs/stats/?workflow={bad}")
        assert response.status_code == 400
        assert f"There is no workflow with id {bad}." in response.content.decode()
        assert 'id="id_workflow_errors"' in response.content.decode()
    assert user_client.get("/runs/stats/").status_code == 200


@pytest.mark.django_db
def test_charts_and_stats_need_the_view_permission(article):
    run = finished_run(article, {"topic": "a"}, ["x"])
    for url in (f"/runs/stats/?workflow={article.pk}", f"/runs/{run.pk}/charts/"):
        assert Client().get(url).status_code == 302
        assert client_with().get(url).status_code == 403
        assert client_with("runs.view_run").get(url).status_code == 200
