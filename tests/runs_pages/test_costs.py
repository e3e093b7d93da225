"""Costs on the run pages (issue 19): each step's amount and where it came from, unknown as "—" with
the reason and a link to price it, totals that never add currencies or count unknown as zero, the
list's cost column in one query, statistics and comparison, and the run form's budget."""
from __future__ import annotations

import datetime
import html
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from prices.models import Price
from prices.services import price_save
from runs.models import Response, Run, RunStatus
from runs.services import run_start
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

UNKNOWN_NOTE = "No price for model `gpt-4o-mini` on endpoint `Secret endpoint`."
PRICED = {"cost_source": "computed", "cost_currency": "USD", "price_id": 7, "price_version": 2,
          "cost_note": "price #7 v2: `gpt-4o-mini` on every endpoint, from 2026-12-01 00:00"}
UNKNOWN = {"cost_nano": None, "cost_source": "unknown", "cost_currency": None, "cost_note": UNKNOWN_NOTE}


def priced_run(workflow: Workflow, costs: list[dict[str, Any]], *, status: str = RunStatus.SUCCEEDED,
               error: str = "", **start: Any) -> Run:
    """A finished run whose steps carry the given cost fields, recorded before the run is made final
    (as the engine does), so the statistics' rollup counts them."""
    run = run_start(workflow=workflow, inputs={"topic": "tides"}, user=None, **start)
    keys = [step["output_key"] for step in run.snapshot["steps"]]
    for index, cost in enumerate(costs):
        Response.objects.create(run=run, index=index, output_key=keys[index], payload_name=f"p-{keys[index]}",
                                status="succeeded", output=f"answer {index}", prompt_tokens=10, completion_tokens=5,
                                latency_ms=1000, model="gpt-4o-mini", endpoint_name="Secret endpoint", **cost)
    Run.objects.filter(pk=run.pk).update(status=status, error=error, next_step=len(costs), started_at=timezone.now(),
                                         finished_at=timezone.now(), prompt_tokens=10 * len(costs),
                                         completion_tokens=5 * len(costs), latency_ms=1000 * len(costs))
    run.refresh_from_db()
    return run


def known(nano: int, **fields: Any) -> dict[str, Any]:
    return {**PRICED, "cost_nano": nano, **fields}


def page_of(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def test_the_run_page_shows_each_steps_cost_its_source_and_unknown_as_a_dash_with_a_link_to_price_it(user_client, article):
    run = priced_run(article, [known(1_200_000), known(500_000, tokens_estimated=True), UNKNOWN])
    page = page_of(user_client, f"/runs/{run.pk}/")
    endpoint_id = run.snapshot["steps"][2]["payload"]["endpoint_id"]
    assert 'Cost <strong data-field="cost" title="price #7 v2: `gpt-4o-mini` on every endpoint' in page
    assert ">$0.001200</strong> <span class=\"cost-note\" data-field=\"cost_note\">price #7 v2</span>" in page
    assert ">≈$0.000500</strong>" in page  # tokens counted locally: the cost is an estimate
    assert f'>—</strong> <span class="cost-note" data-field="cost_note">{UNKNOWN_NOTE}</span>' in page
    assert f'<a href="/prices/new/?model=gpt-4o-mini&endpoint={endpoint_id}" data-field="add_price">add a price</a>' in page
    assert page.count('data-field="add_price"') == 1  # only the unknown step offers it
    assert '<dd id="run-cost">≈$0.001700 + 1 step unpriced' in page


def test_a_step_recorded_before_prices_existed_says_so_and_a_free_one_says_free(user_client, article):
    run = priced_run(article, [{"cost_nano": 0, "cost_source": "free", "cost_note": "Endpoint `x` is marked free."},
                               {"cost_nano": None, "cost_source": None}])
    page = page_of(user_client, f"/runs/{run.pk}/")
    assert '>free</strong>' in page and "`manage.py reprice` prices it." in page
    assert '<dd id="run-cost">free + 1 step unpriced' in page


def test_a_budget_reached_run_shows_the_status_its_error_and_its_budget(user_client, article):
    price_save(Price(model="gpt-4o-mini", match="exact", effective_from=timezone.now() - datetime.timedelta(days=1),
                     input_per_million=Decimal("1"), output_per_million=Decimal("1000"), currency="USD"))
    error = "Budget reached: $0.0200 of $0.1100 spent; step 2 (paragraph) could cost up to $0.1000 (max_tokens 100)."
    run = priced_run(article, [known(20_000_000)], status=RunStatus.BUDGET_REACHED, error=error, budget="0.11")
    page = page_of(user_client, f"/runs/{run.pk}/")
    assert '<span class="badge" data-field="status" data-status="budget">Budget reached</span>' in page
    assert f'<p class="alert alert-error" id="run-error">{error}</p>' in page
    assert '<span id="run-budget">budget $0.1100</span>' in page
    listing = page_of(user_client, "/runs/?status=budget")
    assert f'href="/runs/{run.pk}/"' in listing and '<option value="budget" selected>Budget reached</option>' in listing


def test_the_run_list_shows_each_runs_cost_with_one_query_for_the_whole_page(user_client, article):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert user_client.get("/runs/").status_code == 200
        return len(captured)

    first = priced_run(article, [known(1_200_000), UNKNOWN])
    few = queries()
    for n in range(6):
        priced_run(article, [known(1_000_000 * (n + 1)), known(10, cost_currency="EUR")])
    assert queries() == few
    page = page_of(user_client, "/runs/")
    assert '<th scope="col" class="num hide-narrow">Cost</th>' in page
    row = page.split(f'<tr data-run-id="{first.pk}">')[1].split("</tr>")[0]
    assert '>$0.001200 + 1 step unpriced</td>' in row and 'title="1 step of unknown cost, not counted as zero"' in row
    assert ">€0.00000001 + $0.006000</td>" in page  # two currencies side by side, never added
    assert "$0.001200 + 1 step unpriced" in page_of(user_client, f"/runs/{first.pk}/row/")


def test_statistics_show_cost_per_day_per_currency_never_summed_with_the_unpriced_steps(user_client, article):
    priced_run(article, [known(1_200_000), known(3_000_000, cost_currency="EUR"), UNKNOWN])
    priced_run(article, [known(800_000)])
    page = page_of(user_client, f"/runs/stats/?workflow={article.pk}")
    assert '<dd data-field="cost">€0.003000 + $0.002000 + 1 step unpriced in total' in page
    assert '<td class="num" data-field="cost">€0.003000 + $0.002000 + 1 step unpriced</td>' in page
    assert 'id="chart-day-cost-usd"' in page and 'id="chart-day-cost-eur"' in page
    assert "1 step of unknown cost not counted." in page
    today = timezone.localdate().strftime("%m-%d")
    assert f"<title>{today}: USD $0.002000</title>" in page and f"<title>{today}: EUR €0.003000</title>" in page


def test_the_run_charts_have_a_cost_per_step_chart_that_leaves_out_unknown_costs_and_says_so(user_client, article):
    run = priced_run(article, [known(1_200_000), UNKNOWN, known(300_000)])
    fragment = page_of(user_client, f"/runs/{run.pk}/charts/")
    assert 'id="chart-step-cost-usd"' in fragment and "1 step of unknown cost not shown." in fragment
    assert "<title>1 outline: USD $0.001200</title>" in fragment and "<title>3 summary: USD $0.000300</title>" in fragment
    assert "2 paragraph: USD" not in fragment


def test_compare_shows_each_sides_cost_and_the_difference_only_when_both_are_known(user_client, article):
    left = priced_run(article, [known(1_000_000), known(2_000_000), UNKNOWN])
    right = priced_run(article, [known(1_500_000), known(1_000_000), known(1)])
    page = page_of(user_client, f"/runs/compare/?a={left.pk}&b={right.pk}")
    assert ('<tr id="compare-cost"><th scope="row">Cost</th><td>$0.003000 + 1 step unpriced</td><td>$0.002500</td>'
            '<td class="num" data-field="cost-delta"></td></tr>') in page  # a side is partly unknown: no difference
    steps = page.split('id="compare-step-')
    assert 'cost <span data-field="cost-delta">+$0.000500</span>' in steps[1]
    assert 'cost <span data-field="cost-delta">-$0.001000</span>' in steps[2]
    assert "data-field=\"cost-delta\"" not in steps[3] and '<strong data-field="cost" title="' + UNKNOWN_NOTE in steps[3]
    both = priced_run(article, [known(1_000_000)])
    again = priced_run(article, [known(4_000_000)])
    assert 'data-field="cost-delta">+$0.003000</td>' in page_of(user_client, f"/runs/compare/?a={both.pk}&b={again.pk}")


def test_the_run_form_starts_a_run_with_the_budget_given(user_client, article):
    price_save(Price(model="gpt-4o-mini", match="exact", effective_from=timezone.now() - datetime.timedelta(days=1),
                     input_per_million=Decimal("1"), output_per_million=Decimal("2"), currency="USD"))
    form = page_of(user_client, f"/run/{article.pk}/")
    assert 'name="run_budget"' in form and 'name="run_budget_currency" value="USD"' in form
    response = user_client.post(f"/run/{article.pk}/", {"topic": "tides", "tone": "plain", "run_budget": "0.50",
                                                        "run_budget_currency": "usd"})
    assert response.status_code == 302
    run = Run.objects.get()
    assert (run.budget_nano, run.budget_currency, run.inputs) == (500_000_000, "USD", {"topic": "tides", "tone": "plain"})


def test_a_budget_the_service_refuses_is_shown_at_the_field_and_keeps_what_was_typed(user_client, article):
    article.budget, article.budget_currency = Decimal("2"), "EUR"
    article.save()
    form = page_of(user_client, f"/run/{article.pk}/")
    assert 'name="run_budget" value="2.000000"' in form and 'name="run_budget_currency" value="EUR"' in form
    response = user_client.post(f"/run/{article.pk}/", {"topic": "the tides of March", "tone": "dry",
                                                        "run_budget": "0.5", "run_budget_currency": "USD"})
    assert response.status_code == 400 and not Run.objects.exists()
    page = html.unescape(response.content.decode())
    errors = page.split('id="id_run_budget_errors"')[1].split("</ul>")[0]
    assert f"Step 1 (outline): {UNKNOWN_NOTE} A cap cannot be checked without it" in errors
    assert "the tides of March</textarea>" in page and "dry</textarea>" in page
    assert 'name="run_budget" value="0.5"' in page and 'name="run_budget_currency" value="USD"' in page
