"""The builder's graph in headless Chromium: it redraws as the steps' Flow changes, and a node opens
its step's row. Fails on any browser console error (tests/browser/conftest.py)."""
import os

import pytest
from playwright.sync_api import expect

from tests.factories import make_block, make_endpoint, make_payload, make_workflow
from workflows.models import Step

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_graph_follows_the_flow_fields_and_marks_a_problem_on_its_node(browser, admin_user):
    endpoint = make_endpoint(name="local")
    outline = make_payload("outline", endpoint, [("user", make_block("outline-task", "Outline {{ topic }}."))])
    angle = make_payload("angle", endpoint, [("user", make_block("angle-task", "An angle on {{ topic }}."))])
    check = make_payload("check", endpoint, [("user", make_block("check-task", "Check {{ item }}."))])
    workflow = make_workflow("claims", [("outline", outline), ("angle", angle), ("checked", check)])
    page = browser.new_page()
    browser.login(page, path=f"/workflows/{workflow.pk}/")

    # `item` is unknown until the third step maps over a list: a problem marked on node 3.
    node_three = page.locator('.graph-node[data-step="3"]')
    expect(node_three).to_have_attribute("data-state", "problem")
    expect(page.locator(".graph-node[data-level='0']")).to_have_count(3)  # nothing reads anything: one row

    row = page.locator("#step-rows li[data-step-row]").nth(2)
    row.locator("summary").click()
    row.get_by_label("For each item of").fill("outline")
    expect(node_three).to_have_attribute("data-state", "ok")
    expect(node_three).to_have_attribute("data-level", "1")
    expect(page.locator('.graph-edge[data-from="1"][data-to="3"]')).to_have_attribute("data-kind", "map")
    expect(node_three.locator(".graph-badge[data-kind='map']")).to_contain_text("outline")
    expect(page.locator("#check-status")).to_have_attribute("data-ready", "true")

    page.locator("#step-rows li[data-step-row]").nth(1).locator("summary").click()
    page.locator("#step-rows li[data-step-row]").nth(1).get_by_label("When", exact=True).fill('topic != "x"')
    expect(page.locator('.graph-node[data-step="2"] .graph-badge[data-kind="when"]')).to_be_visible()
    if os.environ.get("SCREENSHOTS_TO"):  # a person looks at it: SCREENSHOTS_TO=/tmp pytest ...
        page.locator("#flow").screenshot(path=os.path.join(os.environ["SCREENSHOTS_TO"], "builder-graph.png"))

    # A node opens its step's row.
    page.locator('.graph-node[data-step="1"]').click()
    expect(page.locator("#step-rows li[data-step-row]").first.locator("input[name=step_output]")).to_be_focused()

    page.get_by_role("button", name="Save workflow").click()
    page.wait_for_url(f"**/workflows/{workflow.pk}/")
    assert Step.objects.get(workflow=workflow, output_key="checked").for_each == "outline"
    assert Step.objects.get(workflow=workflow, output_key="angle").when == 'topic != "x"'
