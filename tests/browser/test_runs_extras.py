"""People comparing runs, replaying from a step, reading the charts and exporting a run, in headless Chromium
against daphne and the fake LLM. Every page fails the test on a console error (tests/browser/conftest.py)."""
import json
import re

import pytest

from tests.factories import make_block, make_endpoint, make_payload, make_workflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

API_KEY = "sk-browser-planted-key-42"


@pytest.fixture
def story(fake_llm, admin_user):  # type: ignore[no-untyped-def]
    """Three steps; the second reads an input too, so a replay from it with another tone changes its output."""
    fake_llm.control(inter_token_ms=5)
    endpoint = make_endpoint(fake_llm.base_url, name="Local mock LLM", api_key=API_KEY)
    prompts = [("outline", "Write a short outline about {{ topic }}."),
               ("paragraph", "Expand this outline in a {{ tone }} tone:\n{{ previous }}"),
               ("summary", "Summarize this paragraph in one sentence:\n{{ previous }}")]
    steps = [(key, make_payload(f"story-{key}", endpoint, [("user", make_block(f"story-{key}", text))], stream=True))
             for key, text in prompts]
    return make_workflow("Story", steps, inputs=[{"name": "topic", "description": "What it is about."},
                                                  {"name": "tone", "default": "plain"}])


def start_run(browser, page, story, topic: str) -> int:  # type: ignore[no-untyped-def]
    page.goto(f"{browser.base_url}/run/{story.pk}/")
    page.get_by_label("topic").fill(topic)
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    page.wait_for_selector("#run-status [data-status=succeeded]")
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def test_a_person_compares_two_runs_with_different_inputs_and_sees_the_differences(browser, story):
    page = browser.new_page()
    browser.login(page)
    first = start_run(browser, page, story, "tidal energy")
    # The charts are redrawn when the run finishes on the open page: one bar per step.
    page.locator("#chart-step-latency rect").nth(2).wait_for()
    assert page.locator("#chart-step-tokens rect").count() == 6  # prompt and completion per step
    second = start_run(browser, page, story, "solar sails")

    page.get_by_role("link", name="Runs", exact=True).click()
    page.get_by_label(f"Compare run #{first}").check()
    page.get_by_label(f"Compare run #{second}").check()
    page.get_by_role("button", name="Compare ticked runs").click()
    page.wait_for_url(re.compile(r"/runs/compare/\?"))
    assert page.get_by_role("heading", level=1).inner_text() == f"Compare runs #{first} and #{second}"

    inputs = page.locator("#compare-inputs tr[data-changed=true]")
    assert inputs.count() == 1
    assert inputs.locator("del").all_inner_texts() == ["tidal energy"]
    assert inputs.locator("ins").all_inner_texts() == ["solar sails"]
    outline = page.locator("#compare-step-0")
    assert outline.get_attribute("data-changed") == "true"
    assert outline.locator("[data-side=left] details.prompt del").first.inner_text() == "tidal energy."
    assert outline.locator("[data-side=right] details.prompt ins").first.inner_text() == "solar sails."
    # The outputs differ too (the fake LLM answers from the prompt's words), marked on both sides.
    assert outline.locator("[data-side=left] > pre.diff del").count() > 0
    assert outline.locator("[data-side=right] > pre.diff ins").count() > 0
    assert page.locator(".compare-step").count() == 3


def test_a_person_replays_from_step_two_with_another_tone_and_compares_with_the_source(browser, story):
    page = browser.new_page()
    browser.login(page)
    source = start_run(browser, page, story, "tidal energy")

    page.locator("#step-1").get_by_role("link", name="Replay from here").click()
    page.wait_for_url(re.compile(rf"/runs/{source}/replay/\?from_step=1$"))
    assert page.get_by_label("topic").input_value() == "tidal energy"  # the source run's inputs
    assert page.get_by_label("Replay from step").input_value() == "1"
    page.get_by_label("tone").fill("cheerful")
    page.get_by_role("button", name="Start replay").click()
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    replay = int(page.url.rstrip("/").rsplit("/", 1)[1])
    assert replay != source
    page.wait_for_selector("#run-status [data-status=succeeded]")
    assert page.locator("#step-0 [data-field=status]").inner_text() == "copied"
    assert page.locator("#compare-source-note").is_hidden()

    page.get_by_role("link", name="Compare with source").click()
    page.wait_for_url(re.compile(rf"/runs/compare/\?a={source}&b={replay}$"))
    assert page.locator("#compare-step-0").get_attribute("data-changed") == "false"  # copied, the same
    paragraph = page.locator("#compare-step-1")
    assert paragraph.get_attribute("data-changed") == "true"
    assert paragraph.locator("[data-side=left] details.prompt del").first.inner_text() == "plain"
    assert paragraph.locator("[data-side=right] details.prompt ins").first.inner_text() == "cheerful"
    assert paragraph.locator("[data-side=right] > pre.diff ins").count() > 0
    assert page.locator("#compare-inputs tr[data-changed=true] ins").inner_text() == "cheerful"


def test_an_emptied_required_input_of_a_replay_is_shown_next_to_it_and_nothing_starts(browser, story):
    # Bad input is answered with a 400 (as on every form of the pages), which Chromium logs as a console error.
    browser.allow_errors(r"status of 400 \(Bad Request\) \(http://[^)]*/runs/\d+/replay/\?from_step=2\)$")
    page = browser.new_page()
    browser.login(page)
    source = start_run(browser, page, story, "tidal energy")
    page.goto(f"{browser.base_url}/runs/{source}/replay/?from_step=2")
    page.get_by_label("topic").fill("")
    page.get_by_role("button", name="Start replay").click()
    page.locator("#id_topic_errors").get_by_text("This field is required.").wait_for()
    assert page.url == f"{browser.base_url}/runs/{source}/replay/?from_step=2"
    assert page.get_by_label("Replay from step").input_value() == "2"


def test_a_person_reads_the_workflow_charts_per_day_and_downloads_a_run_as_json(browser, story):
    page = browser.new_page()
    browser.login(page)
    run_id = start_run(browser, page, story, "tidal energy")
    start_run(browser, page, story, "solar sails")

    page.goto(f"{browser.base_url}/runs/{run_id}/")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export JSON").click()
    download = download_info.value
    assert download.suggested_filename == f"run-{run_id}-story.json"
    body = open(download.path(), encoding="utf-8").read()
    assert API_KEY not in body
    document = json.loads(body)
    assert document["run"]["id"] == run_id and len(document["responses"]) == 3
    assert document["inputs"] == {"topic": "tidal energy", "tone": "plain"}

    page.get_by_role("link", name="Statistics of Story").click()
    page.wait_for_url(re.compile(rf"/runs/stats/\?workflow={story.pk}$"))
    assert page.locator("#stats-totals [data-field=runs]").inner_text() == "2"
    for chart in ("chart-day-latency", "chart-day-latency-total", "chart-day-tokens", "chart-day-tokens-total"):
        assert page.locator(f"#{chart} svg[role=img]").is_visible()
    # Today's bar, with its value as text.
    assert page.locator("#chart-day-tokens-total rect").count() == 2  # prompt and completion of today
    page.locator("#chart-day-latency summary").click()
    assert page.locator("#chart-day-latency table tbody tr").count() == 30
