"""The price book's rule (prices.book.rate_for), a step's cost (step_cost) and the ties prices.services refuses."""
import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from core.money import from_nano, to_nano
from llm.models import Endpoint
from prices.book import COST_COMPUTED, COST_FREE, COST_REPORTED, COST_UNKNOWN, Rate, rate_for, step_cost
from prices.models import Price
from prices.services import price_save
from tests.factories import make_endpoint
from tests.prices.conftest import make_price

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
JUNE = datetime.datetime(2026, 6, 1, tzinfo=UTC)


def at(day: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(day).replace(tzinfo=UTC)


# --- which entry wins ---------------------------------------------------------------------------
def test_each_tier_beats_the_next() -> None:
    endpoint = make_endpoint(name="ollama")
    global_regex = make_price("qwen.*", match="regex", input_per_million=Decimal("4"))
    assert rate_for(endpoint.pk, "qwen2.5:7b", JUNE).price_id == global_regex.pk
    global_exact = make_price("qwen2.5:7b", input_per_million=Decimal("3"))
    assert rate_for(endpoint.pk, "qwen2.5:7b", JUNE).price_id == global_exact.pk
    endpoint_regex = make_price("qwen.*", match="regex", endpoint=endpoint, input_per_million=Decimal("2"))
    assert rate_for(endpoint.pk, "qwen2.5:7b", JUNE).price_id == endpoint_regex.pk
    endpoint_exact = make_price("qwen2.5:7b", endpoint=endpoint, input_per_million=Decimal("1"))
    rate = rate_for(endpoint.pk, "qwen2.5:7b", JUNE)
    assert (rate.source, rate.price_id, rate.input) == (COST_COMPUTED, endpoint_exact.pk, Decimal("1"))
    # Another endpoint sees only the global entries.
    other = make_endpoint(name="other")
    assert rate_for(other.pk, "qwen2.5:7b", JUNE).price_id == global_exact.pk


def test_a_more_specific_tier_wins_even_when_older() -> None:
    endpoint = make_endpoint(name="ollama")
    specific = make_price("m", endpoint=endpoint, effective_from=at("2025-01-01"))
    make_price("m", effective_from=at("2026-05-01"))
    assert rate_for(endpoint.pk, "m", JUNE).price_id == specific.pk


def test_the_newest_entry_not_after_the_step_is_used_and_a_future_one_is_not() -> None:
    make_price("m", effective_from=at("2026-01-01"), input_per_million=Decimal("1"))
    march = make_price("m", effective_from=at("2026-03-01"), input_per_million=Decimal("2"))
    make_price("m", effective_from=at("2026-09-01"), input_per_million=Decimal("3"))
    assert rate_for(None, "m", JUNE).price_id == march.pk
    assert rate_for(None, "m", at("2026-03-01")).price_id == march.pk  # from that moment on
    assert rate_for(None, "m", at("2026-02-28")).input == Decimal("1")
    assert rate_for(None, "m", at("2026-10-01")).input == Decimal("3")
    before_all = rate_for(None, "m", at("2025-12-31"))
    assert before_all.source == COST_UNKNOWN and before_all.price_id is None


def test_a_remembered_rate_is_what_a_fresh_lookup_finds_at_every_moment() -> None:
    """rate_for keeps each (endpoint, model)'s rate until a price of its tiers takes effect: asked in any
    order around every date, it answers what reading the book afresh answers."""
    import random

    from prices.book import book, book_forget

    endpoint = make_endpoint(name="ollama")
    make_price("m", effective_from=at("2026-01-01"), input_per_million=Decimal("1"))
    make_price("m.*", match="regex", effective_from=at("2026-02-01"), input_per_million=Decimal("2"))
    make_price("m", endpoint=endpoint, effective_from=at("2026-04-01"), input_per_million=Decimal("3"))
    make_price("m", effective_from=at("2026-06-01"), input_per_million=Decimal("4"))
    dates = [at(day) for day in ("2025-12-31", "2026-01-01", "2026-01-15", "2026-02-01", "2026-03-31",
                                 "2026-04-01", "2026-05-31", "2026-06-01", "2027-01-01")]
    asked = [(endpoint_id, moment) for endpoint_id in (None, endpoint.pk) for moment in dates] * 3
    random.Random(7).shuffle(asked)
    for endpoint_id, moment in asked:
        remembered = rate_for(endpoint_id, "m", moment)
        book_forget()
        assert remembered == rate_for(endpoint_id, "m", moment), (endpoint_id, moment)
        assert book().rates  # the answer was kept for the next step
    assert rate_for(endpoint.pk, "m", at("2026-05-31")).input == Decimal("3")
    assert rate_for(None, "m", at("2026-05-31")).input == Decimal("1")


def test_a_regex_matches_the_whole_name_only() -> None:
    make_price("gpt-4o", match="regex")
    assert rate_for(None, "gpt-4o-mini", JUNE).source == COST_UNKNOWN
    assert rate_for(None, "gpt-4o", JUNE).source == COST_COMPUTED


def test_a_regex_tie_is_unknown_and_names_both_entries() -> None:
    endpoint = make_endpoint(name="ollama")
    first = make_price("qwen.*", match="regex")
    # Written directly: the services refuse this pair for a model they know, but a model first
    # seen in a step can still meet two patterns at once.
    second = Price.objects.create(model=".*:7b", match="regex", effective_from=first.effective_from,
                                  input_per_million=1, output_per_million=1)
    rate = rate_for(endpoint.pk, "qwen2.5:7b", JUNE)
    assert rate.source == COST_UNKNOWN and rate.price_id is None
    assert f"#{first.pk}" in rate.basis and f"#{second.pk}" in rate.basis
    assert "qwen2.5:7b" in rate.basis and "ollama" in rate.basis


def test_unknown_names_the_model_and_the_endpoint() -> None:
    endpoint = make_endpoint(name="ollama")
    rate = rate_for(endpoint.pk, "llama3:8b", JUNE)
    assert rate.source == COST_UNKNOWN
    assert "llama3:8b" in rate.basis and "ollama" in rate.basis


def test_a_free_endpoint_costs_nothing_whatever_the_book_says() -> None:
    endpoint = make_endpoint(name="local", pricing=Endpoint.PRICING_FREE)
    make_price("m", endpoint=endpoint)
    rate = rate_for(endpoint.pk, "m", JUNE)
    assert rate.source == COST_FREE and "local" in rate.basis
    cost = step_cost(rate, prompt_tokens=1000, completion_tokens=1000, reported=Decimal("0.5"))
    assert (cost.nano, cost.source) == (0, COST_FREE)


def test_a_per_second_endpoint_is_priced_by_llm_time() -> None:
    endpoint = make_endpoint(name="gpu", pricing=Endpoint.PRICING_PER_SECOND, price_per_second=Decimal("0.0004"),
                             price_currency="EUR")
    make_price("m", endpoint=endpoint)
    rate = rate_for(endpoint.pk, "m", JUNE)
    assert (rate.source, rate.per_second, rate.currency) == (COST_COMPUTED, Decimal("0.0004"), "EUR")
    cost = step_cost(rate, prompt_tokens=10, completion_tokens=10, latency_ms=2500)
    assert (cost.nano, cost.currency) == (1_000_000, "EUR")  # 2.5 s at €0.0004


def test_per_second_pricing_needs_a_price() -> None:
    with pytest.raises(ValidationError) as caught:
        make_endpoint(name="gpu", pricing=Endpoint.PRICING_PER_SECOND)
    assert "price_per_second" in caught.value.message_dict


# --- what a step costs --------------------------------------------------------------------------
def rate(**prices: str) -> Rate:
    values = {name: Decimal(value) for name, value in prices.items()}
    return Rate(COST_COMPUTED, "USD", 7, 2, **values)


def test_cached_and_reasoning_tokens_have_their_own_prices() -> None:
    cost = step_cost(rate(input="2.50", output="10", cached="1.25", reasoning="20"),
                     prompt_tokens=1000, completion_tokens=500, cached_tokens=400, reasoning_tokens=100)
    # 600 * 2.50 + 400 * 1.25 + 400 * 10 + 100 * 20 = 8000 per million tokens = $0.008
    assert from_nano(cost.nano) == Decimal("0.008")
    assert (cost.source, cost.price_id, cost.price_version, cost.currency) == (COST_COMPUTED, 7, 2, "USD")


def test_without_their_own_prices_cached_pay_input_and_reasoning_pay_output() -> None:
    plain = step_cost(rate(input="3", output="15"), prompt_tokens=1000, completion_tokens=200)
    split = step_cost(rate(input="3", output="15"), prompt_tokens=1000, completion_tokens=200,
                      cached_tokens=300, reasoning_tokens=150)
    assert plain.nano == split.nano == to_nano(Decimal("0.006"))


def test_token_counts_out_of_range_are_clamped() -> None:
    cost = step_cost(rate(input="1", output="1", cached="0", reasoning="0"), prompt_tokens=10, completion_tokens=10,
                     cached_tokens=50, reasoning_tokens=-5)
    assert cost.nano == 10_000  # all prompt tokens cached (free), no reasoning: 10 output tokens at $1/M


def test_a_step_cost_is_rounded_half_to_even_to_the_nano() -> None:
    # One token at $0.0005/M is 0.5 nano: rounds to 0; three tokens are 1.5 nano: round to 2.
    assert step_cost(rate(input="0.0005", output="0"), prompt_tokens=1, completion_tokens=0).nano == 0
    assert step_cost(rate(input="0.0005", output="0"), prompt_tokens=3, completion_tokens=0).nano == 2
    assert step_cost(rate(input="0.0015", output="0"), prompt_tokens=1, completion_tokens=0).nano == 2


def test_a_sum_of_many_steps_is_exact() -> None:
    price = rate(input="0.15", output="0.60")
    total = sum(step_cost(price, prompt_tokens=137, completion_tokens=59).nano for _ in range(100_000))
    # Each step: 137 * 0.15 + 59 * 0.60 = 55.95 per million = 55950 nano exactly.
    assert total == 5_595_000_000
    assert from_nano(total) == Decimal("5.595")
    assert sum(0.00005595 for _ in range(100_000)) != 5.595  # what a float sum would have given


def test_a_reported_cost_wins_over_the_book_and_unknown_stays_unknown() -> None:
    reported = step_cost(rate(input="1", output="1"), prompt_tokens=1, completion_tokens=1, reported=Decimal("0.0123"))
    assert (reported.nano, reported.source) == (12_300_000, COST_REPORTED)
    unknown = step_cost(Rate(COST_UNKNOWN, basis="No price for model `x`."), prompt_tokens=1, completion_tokens=1)
    assert (unknown.nano, unknown.source, unknown.note) == (None, COST_UNKNOWN, "No price for model `x`.")


# --- ties and edits in the services ------------------------------------------------------------
def test_an_exact_duplicate_is_refused_on_the_model_field() -> None:
    endpoint = make_endpoint(name="ollama")
    first = make_price("m")
    with pytest.raises(ValidationError) as caught:
        make_price("m")
    assert list(caught.value.message_dict) == ["model"] and f"#{first.pk}" in caught.value.message_dict["model"][0]
    make_price("m", endpoint=endpoint)  # another scope is no tie
    with pytest.raises(ValidationError) as caught:
        make_price("m", endpoint=endpoint)
    assert list(caught.value.message_dict) == ["model"]
    assert Price.objects.count() == 2


def test_two_patterns_matching_a_known_model_at_the_same_moment_tie() -> None:
    make_endpoint(name="ollama", default_model="qwen2.5:7b")
    first = make_price("qwen.*", match="regex")
    with pytest.raises(ValidationError) as caught:
        make_price(".*:7b", match="regex")
    message = caught.value.message_dict["model"][0]
    assert f"#{first.pk}" in message and "qwen2.5:7b" in message
    # Patterns that share no known model, or the same pair at different dates, are fine.
    make_price("llama.*", match="regex")
    make_price(".*:7b", match="regex", effective_from=at("2026-02-01"))
    assert Price.objects.count() == 3


def test_different_dates_are_no_tie() -> None:
    make_price("m", effective_from=at("2026-01-01"))
    make_price("m", effective_from=at("2026-02-01"))
    assert Price.objects.filter(model="m").count() == 2


def test_bad_values_are_refused_by_field() -> None:
    cases = [({"input_per_million": Decimal("-1")}, "input_per_million"),
             ({"match": "regex"}, "model"),
             ({"currency": "usd"}, "currency"),
             ({"cached_input_per_million": Decimal("-0.1")}, "cached_input_per_million")]
    for fields, name in cases:
        with pytest.raises(ValidationError) as caught:
            make_price("qwen(", **fields)
        assert name in caught.value.message_dict, fields
    assert not Price.objects.exists()


def test_an_edit_bumps_the_version_and_the_book_sees_it_at_once() -> None:
    price = make_price("m", input_per_million=Decimal("1"))
    assert price.version == 1 and rate_for(None, "m", JUNE).input == Decimal("1")
    price = price_save(price, fields={"input_per_million": Decimal("1.5")})
    assert price.version == 2
    rate = rate_for(None, "m", JUNE)
    assert (rate.input, rate.price_version) == (Decimal("1.5"), 2)
    assert Price.objects.get(pk=price.pk).version == 2


def test_editing_an_entry_is_not_a_tie_with_itself() -> None:
    price = make_price("m")
    price_save(price, fields={"note": "checked"})
    assert Price.objects.get().note == "checked"
