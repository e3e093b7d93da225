"""The layout in headless Chromium: the grouped navigation as people use it (mouse and keyboard), every main page
at phone width (390x844) without sideways scrolling, and charts with readable labels in cards of equal height."""
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from runs.models import Response, Run, RunStatus
from tests.factories import make_chain, make_endpoint, make_release
from workflows.services import workflow_snapshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


def recorded_run(workflow, topic: str, latencies: list[int]) -> Run:  # type: ignore[no-untyped-def]
    """A finished run as the runner leaves it, written directly (no executor involved)."""
    now = timezone.now()
    snapshot = workflow_snapshot(workflow)
    keys = [step["output_key"] for step in snapshot["steps"]]
    run = Run.objects.create(
        workflow=workflow, workflow_name=workflow.name, inputs={"topic": topic, "tone": "plain"}, release=make_release(workflow, snapshot),
        status=RunStatus.SUCCEEDED, step_count=len(keys), next_step=len(keys), started_at=now, finished_at=now,
        prompt_tokens=40 * len(keys), completion_tokens=20 * len(keys), latency_ms=sum(latencies),
        output=f"A very long final answer about {topic} " * 5)
    for index, key in enumerate(keys):
        Response.objects.create(
            run=run, index=index, output_key=key, payload_name=f"{workflow.name}-{key}", status="succeeded",
            output=f"{key} about {topic}: " + "a-rather-long-unbroken-word " * 8, prompt_tokens=40,
            completion_tokens=20, latency_ms=latencies[index], model="gpt-4o-mini", endpoint_name="fake",
            messages=[{"role": "user", "content": f"Write about {topic}."}],
            cost_nano=12_000 * (index + 1), cost_currency="USD", cost_source="computed")
    return run


@pytest.fixture
def article(admin_user):  # type: ignore[no-untyped-def]
    workflow = make_chain(make_endpoint(name="Local mock LLM"), name="Article")
    workflow.inputs = [{"name": "topic", "description": "What the article is about."},
                       {"name": "tone", "default": "plain"}]
    workflow.save()
    return workflow


def test_a_person_finds_every_page_through_the_grouped_navigation(browser, article):
    page = browser.new_page()
    browser.login(page)
    nav = page.get_by_role("navigation", name="Main")
    current = nav.locator(".navgroup.is-current")
    assert current.count() == 1 and current.locator("summary").inner_text().startswith("Run")
    assert not nav.get_by_role("link", name="Blocks").is_visible()  # groups start closed
    assert not page.get_by_role("button", name="Menu").is_visible()  # the Menu button is for phones only

    nav.get_by_text("Build", exact=True).click()
    assert nav.get_by_role("link").filter(visible=True).all_inner_texts() == ["Blocks", "Payloads", "Workflows"]
    nav.get_by_role("link", name="Workflows").click()
    page.wait_for_url(re.compile(r"/workflows/$"))
    assert page.locator(".navgroup.is-current summary").inner_text().startswith("Build")

    # One group open at a time; Escape closes it and gives the focus back to its summary.
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_text("Run", exact=True).click()
    nav.get_by_text("Settings", exact=True).click()
    assert nav.get_by_role("link", name="LLM Tester").is_visible()
    # The other group closes on the `toggle` event, which the browser fires after the click returns.
    expect(nav.get_by_role("link", name="Runs", exact=True)).to_be_hidden()
    page.keyboard.press("Escape")
    assert not nav.get_by_role("link", name="LLM Tester").is_visible()
    assert page.evaluate("document.activeElement.textContent").strip().startswith("Settings")
    page.keyboard.press("Enter")
    nav.get_by_role("link", name="LLM Tester").click()
    page.wait_for_url(re.compile(r"/llm/tester/$"))

    # Admin and API docs are in the user menu; a click elsewhere closes it.
    page.locator("details.usermenu summary").click()
    assert page.get_by_role("link", name="API docs").is_visible() and page.get_by_role("link", name="Admin").is_visible()
    page.locator("h1").click()
    assert not page.get_by_role("link", name="API docs").is_visible()


def main_pages(browser, article) -> list[str]:  # type: ignore[no-untyped-def]
    first = recorded_run(article, "tidal energy", [1500, 300, 2000])
    second = recorded_run(article, "solar sails and other extremely long topics", [900, 1200, 400])
    payload = article.steps.first().payload
    block = payload.payload_blocks.first().block
    return ["/runs/", f"/runs/{first.pk}/", f"/run/{article.pk}/", "/run/", "/blocks/", f"/blocks/{block.pk}/",
            "/payloads/", f"/payloads/{payload.pk}/", "/workflows/", f"/workflows/{article.pk}/", "/llm/tester/",
            f"/runs/compare/?a={first.pk}&b={second.pk}", f"/runs/stats/?workflow={article.pk}",
            f"/runs/{first.pk}/replay/?from_step=1"]


# What sticks out, to name it in a failure: the deepest elements whose right edge is past the viewport.
WIDEST = """() => [...document.querySelectorAll('body *')].filter((el) => el.getBoundingClientRect().right > innerWidth
  && ![...el.children].some((c) => c.getBoundingClientRect().right > innerWidth))
  .slice(0, 5).map((el) => el.tagName + '#' + el.id + '.' + el.className)"""


def test_every_main_page_fits_a_phone_without_sideways_scrolling(browser, article):
    page = browser.new_page()
    page.set_viewport_size(PHONE)
    browser.login(page)
    too_wide = {}
    for path in main_pages(browser, article):
        page.goto(browser.base_url + path)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            too_wide[path] = (width, page.evaluate(WIDEST))
    assert too_wide == {}

    # The navigation folds behind a Menu button and opens as a list.
    page.goto(browser.base_url + "/runs/")
    nav = page.get_by_role("navigation", name="Main")
    assert not nav.is_visible()
    menu = page.get_by_role("button", name="Menu")
    assert menu.get_attribute("aria-expanded") == "false"
    menu.click()
    assert menu.get_attribute("aria-expanded") == "true" and nav.is_visible()
    nav.get_by_text("Build", exact=True).click()
    nav.get_by_role("link", name="Payloads").click()
    page.wait_for_url(re.compile(r"/payloads/$"))
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


CHART_CHECK = """() => [...document.querySelectorAll('.chart')].map((chart) => ({
  id: chart.id,
  height: chart.getBoundingClientRect().height,
  top: chart.getBoundingClientRect().top,
  gridlines: chart.querySelectorAll('line.chart-grid').length,
  empty: !!chart.querySelector('.chart-empty'),
  unit: (chart.querySelector('.chart-unit') || {}).textContent || '',
  smallest: Math.min(...[...chart.querySelectorAll('svg text')].map((t) => Math.min(
    parseFloat(getComputedStyle(t).fontSize), t.getBoundingClientRect().height))),
}))"""


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, PHONE])
def test_charts_have_a_value_axis_readable_labels_and_paired_cards_of_equal_height(browser, article, viewport):
    run = recorded_run(article, "tidal energy", [1500, 300, 2000])
    page = browser.new_page()
    page.set_viewport_size(viewport)
    browser.login(page)
    for path in (f"/runs/{run.pk}/", f"/runs/stats/?workflow={article.pk}"):
        page.goto(browser.base_url + path)
        charts = page.evaluate(CHART_CHECK)
        # Latency and tokens in pairs, then the cost chart (one per currency; this run's steps cost USD,
        # the statistics' rollup has no cost for a run written directly, so its chart says so).
        assert len(charts) in (3, 5) and charts[-1]["id"].startswith(("chart-step-cost", "chart-day-cost"))
        assert not charts[0]["empty"] and (charts[-1]["empty"] == ("stats" in path))
        for chart in charts:
            if chart["empty"]:
                continue
            assert chart["gridlines"] >= 2, chart
            assert chart["unit"] in ("ms", "tokens", "USD"), chart
            assert chart["smallest"] >= 12, chart
        if viewport["width"] > 720:  # side by side: each pair on one row, of one height
            pairs = charts[:-1]
            for left, right in zip(pairs[::2], pairs[1::2], strict=True):
                assert left["top"] == right["top"] and left["height"] == right["height"], (left, right)
