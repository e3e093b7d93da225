"""What each step costs, recorded by the engine with its provenance, and budgets that stop a run
before the step that could pass them: real runs over HTTP to the fake LLM server."""
import datetime
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.apps import apps
from django.core.exceptions import ValidationError
from django.utils import timezone

from core.money import to_nano
from llm.models import Endpoint
from prices.models import Price
from prices.services import price_save
from runs.engine import execute_run
from runs.models import Response, Run, RunStatus, StepRollup
from runs.rollups import step_rollup_rows
from runs.services import run_start
from tests.factories import execute_watched, make_chain, make_endpoint

pytestmark = pytest.mark.django_db(transaction=True)
YESTERDAY = timezone.now() - datetime.timedelta(days=1)


def price(model: str = "gpt-4o-mini", **fields) -> Price:
    values = {"match": "exact", "effective_from": YESTERDAY, "input_per_million": Decimal("0.15"),
              "output_per_million": Decimal("0.60"), "currency": "USD", **fields}
    return price_save(Price(model=model, **values))


@sync_to_async
def start(base_url: str, *, endpoint_fields: dict | None = None, budget=None, budget_currency=None, **payload) -> Run:
    workflow = make_chain(make_endpoint(base_url, **(endpoint_fields or {})), **payload)
    return run_start(workflow=workflow, inputs={"topic": "tides"}, user=None, budget=budget, budget_currency=budget_currency)


async def responses(run: Run) -> list[Response]:
    return [r async for r in Response.objects.filter(run_id=run.pk).order_by("index")]


def rollup() -> list[tuple]:
    return sorted((r.cost_currency, r.steps, r.cost_nano, r.unpriced) for r in StepRollup.objects.all())


async def test_each_step_records_its_cost_and_the_entry_it_came_from_and_the_rollup_sums_them(fake_llm):
    entry = await sync_to_async(price)()
    run = await start(fake_llm.base_url)
    assert await execute_run(run.pk) == RunStatus.SUCCEEDED
    steps = await responses(run)
    for step in steps:
        exact = (step.prompt_tokens * Decimal("0.15") + step.completion_tokens * Decimal("0.60")) / 1_000_000
        assert step.cost_nano == to_nano(exact) and step.cost_nano > 0
        assert (step.cost_source, step.cost_currency, step.price_id, step.price_version) == ("computed", "USD", entry.pk, 1)
        assert f"price #{entry.pk} v1" in step.cost_note and not step.cost_estimated
    assert await sync_to_async(rollup)() == [("USD", 3, sum(s.cost_nano for s in steps), 0)]
    rebuilt = await sync_to_async(step_rollup_rows)(apps)
    assert [(r["currency"], r["cost"], r["unpriced"]) for r in rebuilt] == [("USD", sum(s.cost_nano for s in steps), 0)]


async def test_a_step_with_no_price_is_unknown_with_the_reason_never_zero(fake_llm):
    run = await start(fake_llm.base_url)
    assert await execute_run(run.pk) == RunStatus.SUCCEEDED
    for step in await responses(run):
        assert (step.cost_nano, step.cost_source, step.cost_currency) == (None, "unknown", None)
        assert step.cost_note == "No price for model `gpt-4o-mini` on endpoint `fake`."
    assert await sync_to_async(rollup)() == [("", 3, 0, 3)]


async def test_a_free_endpoint_costs_nothing_on_purpose_even_with_a_price(fake_llm):
    await sync_to_async(price)()
    run = await start(fake_llm.base_url, endpoint_fields={"pricing": Endpoint.PRICING_FREE})
    assert await execute_run(run.pk) == RunStatus.SUCCEEDED
    assert {(s.cost_nano, s.cost_source) for s in await responses(run)} == {(0, "free")}
    assert await sync_to_async(rollup)() == [("", 3, 0, 0)]


async def test_an_endpoint_priced_per_second_charges_the_steps_llm_time(fake_llm):
    fake_llm.control(latency_ms=30)
    run = await start(fake_llm.base_url, endpoint_fields={"pricing": Endpoint.PRICING_PER_SECOND,
                                                          "price_per_second": Decimal("0.002"), "price_currency": "EUR"})
    assert await execute_run(run.pk) == RunStatus.SUCCEEDED
    for step in await responses(run):
        assert step.latency_ms >= 30
        assert step.cost_nano == to_nano(Decimal("0.002") * step.latency_ms / 1000)
        assert (step.cost_source, step.cost_currency, step.price_id) == ("computed", "EUR", None)


async def test_a_cost_the_server_reports_wins_over_the_price_book(fake_llm):
    await sync_to_async(price)()
    fake_llm.control(usage_cost=0.000123)
    run = await start(fake_llm.base_url)
    assert await execute_run(run.pk) == RunStatus.SUCCEEDED
    assert {(s.cost_nano, s.cost_currency, s.cost_source) for s in await responses(run)} == {(123_000, "USD", "reported")}


async def test_locally_counted_tokens_make_the_cost_an_estimate(fake_llm):
    await sync_to_async(price)()
    fake_llm.control(no_stream_usage=True)
    run = await start(fake_llm.base_url, stream=True)
    assert await execute_run(run.pk) == RunStatus.SUCCEEDED
    for step in await responses(run):
        assert step.tokens_estimated and step.cost_estimated and step.cost_nano > 0


# --- budgets ------------------------------------------------------------------------------------
# $1 in / $1,000 out per million tokens and max_tokens 100: a step's worst case is $0.10; the fake
# server answers 20 tokens ($0.02) plus a prompt of a few dozen tokens.
DEAR = {"input_per_million": Decimal("1"), "output_per_million": Decimal("1000")}


async def test_a_run_stops_before_the_step_whose_worst_case_would_pass_its_budget(fake_llm):
    await sync_to_async(price)(**DEAR)
    run = await start(fake_llm.base_url, budget="0.11", max_tokens=100)
    status, seen = await execute_watched(run.pk)
    assert status == RunStatus.BUDGET_REACHED
    run = await Run.objects.aget(pk=run.pk)
    steps = await responses(run)
    assert len(steps) == 1 and fake_llm.stats()["chat_requests"] == 1  # step 2 never called the LLM
    spent = steps[0].cost_nano
    assert 0.02 < spent / 1e9 < 0.021
    assert run.error == (f"Budget reached: ${Decimal(spent) / 10**9:.4f} of $0.1100 spent; step 2 (paragraph) could "
                         "cost up to $0.1000 (max_tokens 100).")
    assert run.finished_at is not None and run.budget_nano == 110_000_000 and run.budget_currency == "USD"
    assert (seen[-1]["type"], seen[-1]["status"], seen[-1]["error"]) == ("run.budget_reached", "budget", run.error)
    assert await sync_to_async(rollup)() == [("USD", 1, spent, 0)]  # a budget stop is final: counted


async def test_a_budget_below_the_first_steps_worst_case_stops_the_run_at_its_claim(fake_llm):
    await sync_to_async(price)(**DEAR)
    run = await start(fake_llm.base_url, budget="0.05", max_tokens=100)
    assert await execute_run(run.pk) == RunStatus.BUDGET_REACHED
    run = await Run.objects.aget(pk=run.pk)
    assert fake_llm.stats()["chat_requests"] == 0 and not await Response.objects.filter(run=run).aexists()
    assert run.error == ("Budget reached: $0 of $0.0500 spent; step 1 (outline) could cost up to $0.1000 "
                         "(max_tokens 100).")


async def test_a_step_with_no_max_tokens_is_assumed_to_answer_with_the_settings_default(fake_llm, settings):
    settings.COST_BUDGET_DEFAULT_MAX_TOKENS = 50
    await sync_to_async(price)(**DEAR)
    run = await start(fake_llm.base_url, budget="0.04")
    assert await execute_run(run.pk) == RunStatus.BUDGET_REACHED
    run = await Run.objects.aget(pk=run.pk)
    assert run.error.endswith("step 1 (outline) could cost up to $0.0500 (no max_tokens, so 50 assumed).")


async def test_a_budget_comes_from_the_workflow_unless_the_run_sets_one(fake_llm):
    await sync_to_async(price)()

    @sync_to_async
    def start_both() -> tuple[Run, Run]:
        workflow = make_chain(make_endpoint(fake_llm.base_url))
        workflow.budget, workflow.budget_currency = Decimal("5"), "USD"
        workflow.save()
        return (run_start(workflow=workflow, inputs={"topic": "a"}, user=None),
                run_start(workflow=workflow, inputs={"topic": "b"}, user=None, budget="0.5"))
    default, own = await start_both()
    assert (default.budget_nano, own.budget_nano) == (5 * 10**9, 5 * 10**8)
    assert await execute_run(default.pk) == await execute_run(own.pk) == RunStatus.SUCCEEDED


@pytest.mark.parametrize(("budget", "currency", "field", "says"), [
    ("-1", None, "budget", "zero or more"),
    ("lots", None, "budget", "not an amount"),
    ("1", "usd", "budget_currency", "three-letter"),
    ("1", "EUR", "budget_currency", "priced in USD"),
])
def test_a_budget_that_is_not_an_amount_or_mixes_currencies_is_refused_naming_the_field(budget, currency, field, says):
    price()
    workflow = make_chain(make_endpoint())
    with pytest.raises(ValidationError) as caught:
        run_start(workflow=workflow, inputs={"topic": "t"}, user=None, budget=budget, budget_currency=currency)
    assert says in " ".join(caught.value.message_dict[field])
    assert not Run.objects.exists()


def test_a_budget_over_a_step_with_no_price_is_refused_since_it_could_not_be_checked():
    workflow = make_chain(make_endpoint())
    with pytest.raises(ValidationError) as caught:
        run_start(workflow=workflow, inputs={"topic": "t"}, user=None, budget="1")
    assert caught.value.message_dict["budget"] == [
        "Step 1 (outline): No price for model `gpt-4o-mini` on endpoint `fake`. A cap cannot be checked without it: "
        "add a price, or start without a budget."]


# --- totals -------------------------------------------------------------------------------------
def test_totals_keep_currencies_apart_and_count_unknown_steps_instead_of_zero():
    from runs.costs import cost_of_steps, run_costs

    workflow = make_chain(make_endpoint())
    runs = [run_start(workflow=workflow, inputs={"topic": f"t{n}"}, user=None) for n in range(3)]
    rows = [(runs[0], 0, 1_234_500_000, "USD", False), (runs[0], 1, 10_000_000, "EUR", False),
            (runs[0], 2, None, None, False), (runs[1], 0, 5, "USD", True), (runs[1], 1, 0, None, False)]
    for run, index, nano, currency, estimated in rows:
        Response.objects.create(run=run, index=index, output_key=f"k{index}", payload_name="p", status="succeeded",
                                cost_nano=nano, cost_currency=currency, cost_source="computed" if nano is not None else "unknown",
                                tokens_estimated=estimated)
    totals = run_costs([r.pk for r in runs])
    assert totals[runs[0].pk].amounts == {"EUR": Decimal("0.010000000"), "USD": Decimal("1.234500000")}
    assert totals[runs[0].pk].text == "€0.0100 + $1.23 + 1 step unpriced"
    assert totals[runs[1].pk].text == "≈$0.000000005" and totals[runs[1].pk].estimated
    assert totals[runs[2].pk].text == "—" and totals[runs[2].pk].as_json()["amounts"] == {}
    for run in runs:
        assert cost_of_steps(Response.objects.filter(run=run)).as_json() == totals[run.pk].as_json()
    # The compiled query (one per number of runs) returns the plain ORM's rows, for other runs too.
    from runs.costs import _costs_by_run, _costs_by_run_compiled

    def ordered(rows):  # type: ignore[no-untyped-def]
        return sorted(rows, key=lambda row: (row["run_id"], row["cost_currency"] or ""))

    for ids in ([r.pk for r in runs], [runs[1].pk, runs[0].pk], [runs[2].pk]):
        assert ordered(_costs_by_run_compiled.rows(ids)) == ordered(_costs_by_run(ids))


def test_a_sum_over_many_steps_is_exact_to_the_billionth():
    """Integer billionths in SQL: no float ever adds them up (SQLite's SUM of a DECIMAL column would)."""
    from runs.costs import run_costs

    run = run_start(workflow=make_chain(make_endpoint()), inputs={"topic": "t"}, user=None)
    Response.objects.bulk_create(Response(run=run, index=i, output_key=f"k{i}", payload_name="p", status="succeeded",
                                          cost_nano=100_000_001, cost_currency="USD", cost_source="computed")
                                 for i in range(10_000))
    assert run_costs([run.pk])[run.pk].amounts == {"USD": Decimal("1000.000010000")}


def test_a_run_may_ask_for_no_cap_over_its_workflows_default():
    price()
    workflow = make_chain(make_endpoint())
    workflow.budget = Decimal("1")
    workflow.save()
    assert run_start(workflow=workflow, inputs={"topic": "t"}, user=None).budget_nano == 10**9
    assert run_start(workflow=workflow, inputs={"topic": "t"}, user=None, budget=None).budget_nano is None


def test_a_currency_alone_does_not_relabel_the_workflows_cap():
    price()
    workflow = make_chain(make_endpoint())
    workflow.budget = Decimal("5")
    workflow.save()
    with pytest.raises(ValidationError) as caught:
        run_start(workflow=workflow, inputs={"topic": "t"}, user=None, budget_currency="JPY")
    assert "default cap is in USD" in caught.value.message_dict["budget_currency"][0]


@pytest.mark.parametrize(("params", "extra", "tokens", "calls"), [
    ({"max_tokens": 100}, {}, (100, True), 1),
    ({"max_tokens": "abc"}, {}, (4096, False), 1),
    ({"max_tokens": 0.5}, {}, (4096, False), 1),
    ({"max_tokens": -3}, {}, (4096, False), 1),
    ({"max_completion_tokens": 7, "n": 3}, {}, (7, True), 3),
    ({"max_tokens": 10}, {"json_schema": {"type": "object"}, "structured_retries": 2}, (10, True), 3),
])
def test_a_steps_worst_case_reads_only_sound_limits_and_counts_every_answer_it_may_be_billed(params, extra, tokens, calls):
    from runs.engine.budget import worst_calls, worst_tokens

    step = {"payload": {"params": params, **extra}}
    assert worst_tokens(step) == tokens and worst_calls(step) == calls


def test_a_reported_cost_no_price_could_be_is_ignored():
    from llm.parsing import usage_cost

    assert usage_cost({"cost": 0.000123}) == Decimal("0.000123")
    assert usage_cost({"cost": 1e12}) is None and usage_cost({"cost": "-1"}) is None and usage_cost({"cost": True}) is None
