"""People using the run pages and the LLM Tester in headless Chromium, against daphne and the fake LLM."""
import re

import pytest

from tests.factories import expected_chain_output, make_endpoint
from tests.fake_llm import reply_text

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TOPIC = "tidal energy"


def seen(page, element_id: str) -> list[dict]:  # type: ignore[no-untyped-def]
    """Every (status, text length) the element went through, recorded in the page (conftest)."""
    return [entry for entry in page.evaluate("window.__seen") if entry["id"] == element_id]


def start_from_form(page, topic: str) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("link", name="Run a workflow", exact=True).first.click()
    page.get_by_role("link", name="Article").click()
    topic_field = page.get_by_label("topic")
    assert topic_field.input_value() == "ocean tides"  # the declared default, prefilled
    assert page.get_by_text("What the article is about.").is_visible()
    topic_field.fill(topic)
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r"/runs/\d+/$"))


def test_a_person_starts_the_workflow_from_its_form_and_watches_each_step_stream_to_succeeded(browser, article, fake_llm):
    # ~2 s a step: the page joins step 0 a little late and catches up at the first full-text delta (1 s).
    fake_llm.control(inter_token_ms=100)
    page = browser.new_page()
    browser.login(page)
    start_from_form(page, TOPIC)

    status = page.locator("#run-status [data-field=status]")
    page.wait_for_selector("#run-status [data-status=succeeded]")
    assert status.inner_text() == "succeeded"
    assert page.locator("#run-progress-label").inner_text() == "3 of 3 steps done"

    everything = page.evaluate("window.__seen")
    live_at = next(i for i, e in enumerate(everything) if e["id"] == "conn" and e["status"] == "live")
    watched = []  # steps that started after the page was live: nothing of their stream can be missed
    for index in range(3):
        first = next(i for i, e in enumerate(everything) if e["id"] == f"step-{index}")
        history = seen(page, f"step-{index}")
        assert history[-1]["status"] == "succeeded"
        if first > live_at:
            watched.append(index)
            streaming = [e["length"] for e in history if e["status"] == "running" and e["length"] > 0]
            # The text grew piece by piece while the step ran, before the step completed.
            assert len(set(streaming)) >= 2, f"step {index} did not stream: {history}"
    # A page may join step 0 late (its text then arrives whole); the later steps start while it watches.
    assert watched[-2:] == [1, 2]
    # Steps appeared one after another.
    order = [e["id"] for e in everything]
    assert order.index("step-0") < order.index("step-1") < order.index("step-2")

    last = page.locator("#step-2")
    assert last.locator("[data-field=output]").inner_text() == expected_chain_output(TOPIC)
    assert last.locator("[data-field=tokens]").inner_text().endswith("20 out")
    assert re.fullmatch(r"\d+ ms|\d+\.\d\d s", last.locator("[data-field=ttft]").inner_text())
    assert re.fullmatch(r"\d+ ms|\d+\.\d\d s", last.locator("[data-field=latency]").inner_text())

    page.locator("#step-0 details.prompt summary").click()
    prompt = page.locator("#step-0 [data-field=prompt]")
    prompt.get_by_text(f"Write a short outline about {TOPIC}.").wait_for()

    page.get_by_role("link", name="Runs", exact=True).click()
    row = page.locator("tr[data-run-id]").first
    assert row.locator("[data-field=status]").inner_text() == "succeeded"
    assert row.get_by_text("3/3").is_visible()


def test_the_runs_list_shows_a_new_run_and_its_status_changes_live(browser, article, fake_llm):
    fake_llm.control(inter_token_ms=20)
    watcher = browser.new_page()
    browser.login(watcher)
    watcher.locator("#runs-conn[data-state=live]").wait_for()
    assert watcher.get_by_text("No runs yet: run the Article workflow").is_visible()

    starter = browser.new_page()  # same session, another tab
    starter.goto(browser.base_url + "/")
    start_from_form(starter, TOPIC)
    run_id = starter.url.rstrip("/").rsplit("/", 1)[1]

    row = watcher.locator(f'tr[data-run-id="{run_id}"]')
    row.locator("[data-field=status][data-status=succeeded]").wait_for()
    assert row.get_by_text("3/3").is_visible()


def test_a_person_cancels_a_slow_run_from_its_page_and_re_runs_it(browser, article, fake_llm):
    fake_llm.control(inter_token_ms=300, tokens=200)
    page = browser.new_page()
    browser.login(page)
    start_from_form(page, TOPIC)
    # Wait until the first step is visibly streaming, then cancel.
    page.wait_for_function(
        "() => document.querySelector('#step-0 [data-field=output]')?.textContent.length > 0")
    page.get_by_role("button", name="Cancel run").click()
    page.wait_for_selector("#run-status [data-status=cancelled]")
    page.locator("#run-error").get_by_text("Cancelled by a user").wait_for()
    assert page.get_by_role("button", name="Cancel run").is_hidden()
    assert page.locator("#steps .step").count() == 1  # later steps never started

    fake_llm.control(inter_token_ms=5, tokens=20)
    cancelled_url = page.url
    page.get_by_role("button", name="Re-run").click()
    page.wait_for_url(lambda url: url != cancelled_url and re.search(r"/runs/\d+/$", url) is not None)
    page.wait_for_selector("#run-status [data-status=succeeded]")
    assert page.locator("#step-2 [data-field=output]").inner_text() == expected_chain_output(TOPIC)


def test_a_person_streams_an_answer_in_the_llm_tester_and_runs_the_connectivity_test(browser, fake_llm, admin_user):
    make_endpoint(fake_llm.base_url, name="Local mock LLM")
    make_endpoint("http://127.0.0.1:9/v1", name="Nothing listening")
    fake_llm.control(inter_token_ms=40)
    page = browser.new_page()
    browser.login(page)
    page.get_by_role("navigation", name="Main").get_by_text("Settings", exact=True).click()  # the group's menu
    page.get_by_role("link", name="LLM Tester").click()

    page.get_by_label("Endpoint").select_option(label="Local mock LLM")
    page.get_by_text("models listed by this endpoint").wait_for()
    assert page.get_by_label("Model").input_value() == "gpt-4o-mini"
    assert "gpt-4o-mini" in page.locator("#model-options option").evaluate_all("os => os.map(o => o.value)")

    prompt = "Explain tides to a child"
    page.get_by_label(re.compile(r"^Prompt")).fill(prompt)
    page.get_by_role("button", name="Send").click()
    page.wait_for_selector("#answer-status[data-status=succeeded]")
    assert page.locator("#answer").inner_text() == reply_text(prompt, 20)
    streaming = [e["length"] for e in seen(page, "answer") if e["status"] == "streaming"]
    assert len(set(streaming)) >= 2, "the answer did not stream"
    assert page.locator("#answer-metrics [data-field=tokens]").inner_text().endswith("20 out")

    page.get_by_role("button", name="Run connectivity test").click()
    table = page.locator("#checks-table")
    table.wait_for()
    for label in ["Reachable", "Model exists", "Completion", "Streaming", "Usage while streaming", "Structured output"]:
        row = table.locator("tr", has=page.get_by_role("cell", name=label, exact=True))
        assert row.locator(".badge").inner_text() == "pass", label
    assert re.fullmatch(r"\d+ ms", table.locator("tr[data-check=reachable] td.num").inner_text())

    # An endpoint nobody answers: the checks say so, and the rest are skipped.
    page.get_by_label("Endpoint").select_option(label="Nothing listening")
    page.get_by_text("Could not list models").wait_for()
    page.get_by_role("button", name="Run connectivity test").click()
    page.locator("#checks-summary").get_by_text("does not work").wait_for()
    assert page.locator("tr[data-check=reachable] .badge").inner_text() == "fail"
    assert page.locator("tr[data-check=structured_output] .badge").inner_text() == "skipped"


def test_the_run_page_reconnects_after_the_server_drops_and_shows_the_run_to_its_end(browser, article, fake_llm):
    fake_llm.control(inter_token_ms=100)
    page = browser.new_page()
    browser.login(page)
    start_from_form(page, TOPIC)
    page.wait_for_function(
        "() => document.querySelector('#step-0 [data-field=output]')?.textContent.length > 0")
    # While the server is down Chromium logs each refused reconnect attempt.
    browser.allow_errors(r"WebSocket connection to 'ws://.*' failed")
    browser.server.kill()
    page.locator("#run-conn[data-state=reconnecting]").wait_for()
    browser.server.start()  # same port: the run resumes there, the page reconnects and gets the state
    page.wait_for_selector("#run-status [data-status=succeeded]", timeout=60_000)
    assert page.locator("#run-conn").inner_text() == "finished"
    for index in range(3):
        assert page.locator(f"#step-{index} [data-field=status]").inner_text() == "succeeded"
    assert page.locator("#step-2 [data-field=output]").inner_text() == expected_chain_output(TOPIC)
