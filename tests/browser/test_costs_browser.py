"""A person starts a run with a budget and watches it stop, in headless Chromium against daphne and the fake LLM."""
import datetime
import re
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from prices.models import Price
from prices.services import price_save
from tests.factories import make_chain, make_endpoint

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_run_started_with_a_budget_stops_with_budget_reached_and_shows_its_costs_without_a_reload(
        browser, fake_llm, admin_user):
    # $1,000 per million output tokens and max_tokens 100: each step could cost $0.10; step 1 spends about $0.02,
    # so step 2 could pass a $0.11 cap and never starts.
    price_save(Price(model="gpt-4o-mini", match="exact", effective_from=timezone.now() - datetime.timedelta(days=1),
                     input_per_million=Decimal("1"), output_per_million=Decimal("1000"), currency="USD"))
    workflow = make_chain(make_endpoint(fake_llm.base_url), stream=True, name="Dear", max_tokens=100)
    fake_llm.control(inter_token_ms=20)
    page = browser.new_page()
    browser.login(page, path=f"/run/{workflow.pk}/")
    page.get_by_label("topic").fill("tides")
    page.get_by_label("Budget").fill("0.11")
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    page.wait_for_selector("#run-status [data-status=budget]")
    assert page.locator("#run-status [data-field=status]").inner_text() == "Budget reached"
    expect(page.locator("#run-error")).to_have_text(re.compile(r"^Budget reached: \$0\.02\d+ of \$0\.1100 spent; step 2"))
    # The step's cost and the run's total come from the server once the run has ended: no reload.
    expect(page.locator("#step-0 [data-field=cost]")).to_have_text(re.compile(r"^\$0\.02\d+$"))
    expect(page.locator("#run-cost")).to_have_text(re.compile(r"^\$0\.02\d+ · budget \$0\.1100$"))
    assert page.locator("#step-0 [data-field=cost_note]").inner_text().startswith("price #")
