"""The Block editor's live check in headless Chromium: a save's parse error does not outlive the fix."""
import pytest
from playwright.sync_api import expect

from blocks.models import Block
from tests.factories import make_block

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_saved_parse_error_goes_away_when_the_template_parses(browser, admin_user):
    block = make_block("outline-task", "Outline {{ topic }}")
    page = browser.new_page()
    browser.login(page, path=f"/blocks/{block.pk}/")
    editor = page.locator("#id_content")
    editor.fill("Outline {{ topic ")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#id_content_errors")).to_contain_text("does not parse")

    editor.fill("Outline {{ topic }} for {{ audience }}")
    expect(page.locator("#template-check")).to_contain_text("Template parses")
    expect(page.locator("#id_content_errors")).to_have_count(0)
    expect(page.locator("#editor .field.has-error")).to_have_count(0)
    expect(page.get_by_text("does not parse", exact=False)).to_have_count(0)
    assert Block.objects.get(pk=block.pk).content == "Outline {{ topic }}"  # nothing saved yet
