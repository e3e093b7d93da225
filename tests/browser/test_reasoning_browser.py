"""A model's reasoning on the live run page, in headless Chromium against daphne and the fake LLM: the step
that completes while the page watches shows it folded, apart from the answer. The server-rendered page is
in tests/runs_pages/test_reasoning.py."""
import re

import pytest

from tests.browser.test_live_pages import seen, start_from_form
from tests.factories import make_endpoint

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
# The fake server streams this as the answer; llm/client.py splits the leading <think> block off as reasoning.
THINKING = {"content": "<think>I considered tides</think>The answer"}


def test_a_step_that_completes_live_shows_its_reasoning_folded_apart_from_the_answer(browser, article, fake_llm):
    fake_llm.control(inter_token_ms=100)
    fake_llm.fail_next({}, {}, THINKING)  # the third step thinks aloud
    page = browser.new_page()
    browser.login(page)
    start_from_form(page, "tidal energy")
    page.wait_for_selector("#run-status [data-status=succeeded]")

    # The third step started after the page went live: its result came in its step.completed event.
    everything = page.evaluate("window.__seen")
    live_at = next(i for i, e in enumerate(everything) if e["id"] == "conn" and e["status"] == "live")
    assert next(i for i, e in enumerate(everything) if e["id"] == "step-2") > live_at
    assert [e["status"] for e in seen(page, "step-2")][-1] == "succeeded"

    step = page.locator("#step-2")
    assert step.locator("[data-field=output]").inner_text() == "The answer"
    box = step.locator("details.reasoning")
    assert box.is_visible() and box.get_attribute("open") is None  # folded
    assert box.locator("summary").inner_text() == "Reasoning"  # the fake reports no reasoning token count
    reasoning = box.locator("[data-field=reasoning]")
    assert not reasoning.is_visible()
    box.locator("summary").click()
    assert reasoning.is_visible() and reasoning.inner_text() == "I considered tides"
    # Steps without reasoning show no box, and no count the server did not report.
    assert not page.locator("#step-0 details.reasoning").is_visible()
    assert not step.locator("[data-field=reasoning_tokens_item]").is_visible()
    assert not step.locator("[data-field=cached_tokens_item]").is_visible()

    # A reload renders the same on the server, still folded; at phone width nothing sticks out.
    page.set_viewport_size(PHONE)
    page.reload()
    box = page.locator("#step-2 details.reasoning")
    assert box.get_attribute("open") is None
    box.locator("summary").click()
    assert re.fullmatch(r"I considered tides", page.locator("#step-2 [data-field=reasoning]").inner_text())
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_the_llm_tester_folds_the_answer_s_reasoning_and_its_check_says_what_the_server_accepts(
    browser, fake_llm, admin_user
):
    make_endpoint(fake_llm.base_url, name="Local mock LLM")
    page = browser.new_page()
    browser.login(page, path="/llm/tester/")
    page.get_by_text("models listed by this endpoint").wait_for()

    fake_llm.fail_next(THINKING)
    page.get_by_label(re.compile(r"^Prompt")).fill("Why are there tides?")
    page.get_by_role("button", name="Send").click()
    page.wait_for_selector("#answer-status[data-status=succeeded]")
    assert page.locator("#answer").inner_text() == "The answer"
    box = page.locator("details.reasoning")
    assert box.is_visible() and box.get_attribute("open") is None
    box.locator("summary").click()
    assert box.locator("[data-field=reasoning]").inner_text() == "I considered tides"
    # The next answer has no reasoning: the box goes away.
    page.get_by_role("button", name="Send").click()
    page.wait_for_selector("#answer-status[data-status=succeeded]")
    assert not box.is_visible() and page.locator("#answer").inner_text() != "The answer"

    # The structured probe is refused in the json_schema dialect: the test learns json_object with a schema.
    fake_llm.fail_next({}, {}, {"status": 400, "message": "json_schema is not supported, use json_object"})
    page.get_by_role("button", name="Run connectivity test").click()
    row = page.locator("tr[data-check=structured_output]")
    row.wait_for()
    assert row.locator("td").first.inner_text() == "Structured output"
    assert row.locator("td").nth(3).inner_text().startswith("json_object with schema: grammar-constrained")
    accepts = page.locator("#checks-accepts")
    assert accepts.get_by_role("heading").inner_text() == "What the server accepts"
    learned = accepts.locator("dd[data-learned=true]")
    assert learned.count() == 1
    assert learned.inner_text() == "json_object with schema: grammar-constrained learned now"
    assert accepts.locator("dd[data-capability=token_limit_param]").inner_text() == "max_tokens"
