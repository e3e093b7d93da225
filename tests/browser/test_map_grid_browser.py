"""The run page's map grid in headless Chromium: live item events (issue 22) fill and colour its cells,
the progress bar counts items, and a cell opens its item. The events come from a WebSocket that the
test plays in place of the server's (Playwright's routeWebSocket), as docs/events.md describes them."""
import datetime
import json
import os

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.factories import make_endpoint
from tests.flow_factories import make_flow_run, make_flow_workflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_item_events_fill_the_grid_and_a_cell_opens_its_item(browser, admin_user):
    # Held by a worker that is not there, so the server's executor leaves the run to the test's events.
    run = make_flow_run(make_flow_workflow(make_endpoint(name="local")), items={1: "succeeded", 3: "failed"},
                        lease_owner="elsewhere", lease_expires_at=timezone.now() + datetime.timedelta(hours=1))
    sockets = []
    page = browser.new_page()
    # Never connected to the server: the test speaks for it.
    page.route_web_socket(f"**/ws/runs/{run.pk}/", lambda ws: sockets.append(ws))
    browser.login(page, path=f"/runs/{run.pk}/")
    expect(page.locator("#run-conn")).to_have_attribute("data-state", "live")

    grid = page.locator("#step-2 [data-field=items]")
    expect(grid.locator(".item-cell")).to_have_count(3)
    expect(page.locator("#run-progress-label")).to_have_text("4 of 5 steps and items done")
    # The two steps of the first level stand side by side: one row, two boxes at the same height.
    first, second = page.locator("#step-0").bounding_box(), page.locator("#step-1").bounding_box()
    assert first["y"] == second["y"] and second["x"] > first["x"] + first["width"] / 2

    def send(event: dict) -> None:
        sockets[0].send(json.dumps(event))

    send({"type": "step.started", "index": 2, "item": 2, "item_count": 4, "item_value": "Tides come twice a day.",
          "output_key": "checked", "payload": "claims-check"})
    expect(grid.locator('[data-item="2"]')).to_have_attribute("data-status", "running")
    expect(grid.locator(".item-cell")).to_have_count(4)  # item 4 is known now, pending
    expect(grid.locator('[data-item="4"]')).to_have_attribute("data-status", "pending")
    expect(page.locator("#run-progress-label")).to_have_text("4 of 6 steps and items done")
    send({"type": "step.delta", "index": 2, "item": 2, "offset": 0, "text": "tr"})
    grid.locator('[data-item="2"]').click()
    expect(page.locator("#step-2 [data-field=item_detail]")).to_contain_text("Item 2 is running.")
    expect(page.locator("#step-2 [data-field=item_detail] pre")).to_have_text("tr")
    send({"type": "step.completed", "index": 2, "item": 2, "status": "succeeded", "output": "true",
          "prompt_tokens": 8, "completion_tokens": 2, "latency_ms": 40, "attempts": 1})
    expect(grid.locator('[data-item="2"]')).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#run-progress-label")).to_have_text("5 of 6 steps and items done")
    expect(page.locator("#step-2 [data-field=items_done]")).to_have_text("3")
    # The step's own output is not an item's: it stays empty until the map ends.
    expect(page.locator("#step-2 [data-field=output]")).to_have_text("")

    grid.locator('[data-item="3"]').click()
    detail = page.locator("#step-2 [data-field=item_detail]")
    expect(detail).to_contain_text("Barrages hold water back.")
    expect(detail).to_contain_text("HTTP 500")
    expect(grid.locator('[data-item="3"]')).to_have_attribute("aria-pressed", "true")
    if os.environ.get("SCREENSHOTS_TO"):
        page.screenshot(path=os.path.join(os.environ["SCREENSHOTS_TO"], "run-map-grid.png"), full_page=True)
