"""The run page's summary and messages keep up with the live run (headless Chromium, daphne, the fake LLM)."""
import re

import pytest

from tests.factories import expected_chain_output, make_chain, make_endpoint

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def slow_article(fake_llm, admin_user):  # type: ignore[no-untyped-def]
    fake_llm.control(inter_token_ms=150, tokens=20)  # about 3 s a step
    return make_chain(make_endpoint(fake_llm.base_url), stream=True, name="Article")


def test_run_totals_follow_the_steps_and_the_cancel_flash_ends_with_the_run(browser, slow_article):
    page = browser.new_page()
    browser.login(page)
    page.get_by_role("link", name="Run a workflow", exact=True).first.click()
    page.get_by_role("link", name="Article").click()
    page.get_by_label("topic").fill("tides")
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    run_id = page.url.rstrip("/").rsplit("/", 1)[1]

    # Step 1 is recorded while step 2 still streams: the summary already counts its tokens and time.
    page.wait_for_selector("#step-0[data-status=succeeded]")
    step_tokens = page.locator("#step-0 [data-field=tokens]").inner_text()
    assert page.locator("#run-status [data-field=status]").inner_text() == "running"
    assert step_tokens != "0 in · 0 out"
    assert page.locator("#run-tokens").inner_text() == step_tokens
    assert page.locator("#run-latency").inner_text() == page.locator("#step-0 [data-field=latency]").inner_text()

    page.get_by_role("button", name="Cancel run").click()
    page.wait_for_selector("#run-status [data-status=cancelled]")
    flash = page.locator(".messages .alert")
    flash.get_by_text(f"Run {run_id} is cancelled.").wait_for(timeout=5_000)
    assert "cancelling" not in flash.all_inner_texts()[0]
    # Counted from 1, as on the step cards: the second card's step was cancelled.
    page.locator("#run-error").get_by_text("Cancelled by a user during step 2 (paragraph).").wait_for()


def test_a_run_with_a_huge_input_is_watched_live_to_its_end(browser, fake_llm, admin_user):
    # The state of this run is over 1 MiB: sent whole, the frame closed the page's socket every time.
    workflow = make_chain(make_endpoint(fake_llm.base_url), stream=True, name="Article")
    workflow.inputs = [{"name": "topic"}, {"name": "notes", "description": "Kept with the run, not sent."}]
    workflow.save()
    fake_llm.control(inter_token_ms=60, tokens=20)
    page = browser.new_page()
    browser.login(page)
    page.get_by_role("link", name="Run a workflow", exact=True).first.click()
    page.get_by_role("link", name="Article").click()
    page.get_by_label("topic").fill("tides")
    page.get_by_label("notes").fill("n" * 1_900_000)
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    page.wait_for_selector("#run-status [data-status=succeeded]", timeout=30_000)
    assert page.locator("#step-2 [data-field=output]").inner_text() == expected_chain_output("tides")
