"""What the server accepts, in headless Chromium: a person sets a value and re-learns; the section fits a phone."""
import re

import pytest

from llm import services
from llm.models import Capability
from tests.factories import make_endpoint
from tests.fake_llm import FakeLLM

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
MODEL = "meta-llama/Llama-3.1-8B:q4"


def test_a_person_sets_a_value_for_a_new_model_then_resets_and_relearns(browser, admin_user, fake_llm: FakeLLM):  # type: ignore[no-untyped-def]
    endpoint = make_endpoint(fake_llm.base_url, name="Local mock LLM")
    page = browser.new_page()
    browser.login(page, path=f"/endpoints/{endpoint.pk}/")
    assert page.locator("#capabilities-empty").is_visible()
    page.get_by_text("Set what another model accepts").click()
    page.locator("#id_capnew_model").fill(MODEL)
    page.locator("#id_capnew_temperature").select_option(label="no")
    page.locator("#capability-new-form").get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"#capabilities$"))
    row = page.locator(f'form[data-model="{MODEL}"] tr[data-field="temperature"]')
    assert row.get_attribute("data-source") == "set by a person"
    assert Capability.objects.get(model=MODEL).overridden == ["temperature"]

    fake_llm.control(reject_response_format=True)
    page.get_by_role("button", name="Reset and re-learn").click()
    page.locator("#relearn-report").wait_for()
    assert page.locator(f'form[data-model="{MODEL}"]').count() == 0
    learned = page.locator('form[data-model="gpt-4o-mini"] tr[data-field="structured_output"]')
    assert learned.get_attribute("data-source") == "learned"
    assert "response_format" in learned.locator(".evidence").get_attribute("title")


def test_the_section_fits_a_phone(browser, admin_user):  # type: ignore[no-untyped-def]
    endpoint = make_endpoint(name="Local mock LLM")
    services.capability_learn(endpoint_id=endpoint.pk, model="gpt-4o-mini", changes={"structured_output": "json_object"},
                              evidence={"structured_output": "response_format type 'json_schema' is not supported " * 3})
    services.capability_set(endpoint=endpoint, model=MODEL + "-with-a-rather-long-quantisation-suffix",
                            values={"token_limit_param": "max_completion_tokens"})
    page = browser.new_page()
    page.set_viewport_size(PHONE)
    browser.login(page, path=f"/endpoints/{endpoint.pk}/")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    select = page.locator('form[data-model="gpt-4o-mini"] select[name="structured_output"]')
    assert select.bounding_box()["width"] >= 100  # a choice one can read and tap, not a sliver
