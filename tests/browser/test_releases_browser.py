"""A person moves a label on the Releases page with a reason and finds the move in the label history.

Fails on any browser console error (tests/browser/conftest.py)."""
import pytest
from playwright.sync_api import expect

from blocks.services import block_update
from releases.models import Label, LabelMove
from releases.services import label_set, release_cut
from tests.factories import make_endpoint
from tests.releases.test_services import versioned_tree

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_person_moves_a_label_with_a_reason_and_sees_it_in_the_history(browser, admin_user):
    workflow, tone = versioned_tree(make_endpoint())
    r1, _ = release_cut(workflow=workflow, message="calm")
    block_update(block=tone, data={"content": "Write briskly about {{ topic }}."})
    r2, _ = release_cut(workflow=workflow, message="brisk")
    label_set(workflow=workflow, name="production", release=r1, reason="launch")
    label_set(workflow=workflow, name="staging", release=r2, reason="try brisk")

    page = browser.new_page()
    browser.login(page, path=f"/workflows/{workflow.pk}/releases/")
    expect(page.locator("#release-1 .label-badge")).to_have_text("production")
    production = page.locator("#label-production")
    production.get_by_label("Release").select_option(label="r2 · brisk")
    production.locator(".label-move").get_by_label("Reason").fill("staging ran clean for a day")
    production.get_by_role("button", name="Move “production”").click()

    expect(page.locator(".messages")).to_contain_text("Moved label “production” from r1 to r2.")
    expect(page.locator("#release-2 .label-badge")).to_have_text(["production", "staging"])  # by name
    newest = page.locator("#label-history-table tbody tr").first
    expect(newest).to_contain_text("r1 → r2")
    expect(newest).to_contain_text("staging ran clean for a day")
    expect(newest).to_contain_text("admin")
    # Rolling back is one click now that the label has somewhere to go back to.
    expect(page.locator("#label-production").get_by_role("button", name="Roll back to r1")).to_be_visible()

    page.locator("#history-label").select_option("staging")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#label-history-table tbody tr")).to_have_count(1)
    expect(page.locator("#label-history-table tbody tr")).to_contain_text("try brisk")
    assert Label.objects.get(name="production").release == r2
    assert LabelMove.objects.filter(label="production").first().reason == "staging ran clean for a day"
