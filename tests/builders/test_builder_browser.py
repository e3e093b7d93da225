"""A person building blocks, a payload and a workflow in headless Chromium, then running it.

Each test fails on any browser console error (tests/browser/conftest.py)."""
import re

import pytest
from playwright.sync_api import expect

from blocks.models import Block
from payloads.models import Payload
from tests.factories import make_block, make_endpoint, make_payload
from workflows.models import Workflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_person_creates_a_block_and_sees_template_errors_as_they_type(browser, admin_user):
    make_block("existing", "Hello {{ name }}")
    page = browser.new_page()
    browser.login(page, path="/blocks/")
    expect(page.locator("#block-list")).to_contain_text("existing")
    page.get_by_role("link", name="New block").click()
    page.wait_for_url("**/blocks/new/")
    page.get_by_label("Name").fill("outline-task")
    editor = page.locator("#id_content")
    editor.fill("Outline {{ topic ")
    expect(page.locator("#template-check")).to_contain_text("Does not parse: line 1")
    editor.press_sequentially("}} for {{ audience }}")
    expect(page.locator("#template-check")).to_contain_text("Template parses")
    expect(page.locator("#template-check .chip")).to_have_text(["audience", "topic"])
    page.get_by_role("button", name="Create block").click()
    expect(page.locator("#editor")).to_contain_text("created")
    expect(page.locator("#block-list")).to_contain_text("outline-task")
    block = Block.objects.get(name="outline-task")
    assert block.content == "Outline {{ topic }} for {{ audience }}"
    assert page.url.endswith(f"/blocks/{block.pk}/")

    # Search narrows the list as one types.
    page.get_by_label("Search blocks").fill("audience")
    expect(page.locator("#block-list li")).to_have_count(1)


def test_a_person_builds_a_payload_sees_the_preview_change_and_tries_it(browser, admin_user, fake_llm):
    make_endpoint(fake_llm.base_url, name="Local mock LLM")
    make_block("style", "You are terse.")
    make_block("task", "Write about {{ topic }}.")
    page = browser.new_page()
    browser.login(page, path="/payloads/new/")
    page.get_by_label("Name").first.fill("writer")
    page.locator("#add-block-select").select_option(label="task")
    page.get_by_role("button", name="Add", exact=True).click()
    page.locator("#add-block-select").select_option(label="style")
    page.locator("#add-block-role").select_option("system")
    page.get_by_role("button", name="Add", exact=True).click()
    preview = page.locator("#preview")
    expect(preview).to_contain_text("Write about {{ topic }}.")

    # Move the system block first with the keyboard-usable ↑ button.
    page.get_by_role("button", name="Move style up").click()
    expect(page.locator("#preview .chat-preview li").first).to_have_attribute("data-role", "system")

    tokens_before = int(page.locator("#token-count").inner_text())
    page.get_by_label("topic").fill("tidal energy and the moon")
    expect(preview).to_contain_text("Write about tidal energy and the moon.")
    assert int(page.locator("#token-count").inner_text()) > tokens_before

    # The model picker lists the endpoint's models.
    expect(page.locator("#models-status")).to_contain_text("models available")

    page.get_by_role("button", name="Try it").click()
    expect(page.locator("#try-status")).to_have_text("succeeded")
    assert page.locator("#try-output").inner_text() != ""

    page.get_by_role("button", name="Create payload").click()
    page.wait_for_url(re.compile(r"/payloads/\d+/$"))
    payload = Payload.objects.get(name="writer")
    assert [(pb.block.name, pb.role) for pb in payload.payload_blocks.all()] == [("style", "system"), ("task", "user")]


def test_a_person_builds_a_workflow_fixes_a_problem_and_runs_it(browser, admin_user, fake_llm):
    endpoint = make_endpoint(fake_llm.base_url, name="Local mock LLM")
    make_payload("outline", endpoint, [("user", make_block("outline-task", "Outline {{ topic }} for {{ audience }}."))],
                 stream=True)
    make_payload("summary", endpoint, [("user", make_block("summary-task", "Summarize: {{ previous }}"))], stream=True)
    page = browser.new_page()
    browser.login(page, path="/workflows/new/")
    page.locator("#id_name").fill("article")
    expect(page.locator("#flow")).to_contain_text("The workflow has no steps.")

    page.get_by_role("button", name="Add step").click()
    page.locator("#step-rows select[name=step_payload]").first.select_option(label="outline")
    page.locator("#step-rows input[name=step_output]").first.fill("outline")
    page.get_by_role("button", name="Add step").click()
    page.locator("#step-rows select[name=step_payload]").nth(1).select_option(label="summary")
    page.locator("#step-rows input[name=step_output]").nth(1).fill("summary")

    # 'audience' is not an input yet: the problem shows at step 1, and the diagram marks it.
    step_one_problems = page.locator("#step-rows li[data-step-row]").first.locator("[data-step-problems]")
    expect(step_one_problems).to_contain_text("'audience' is neither a workflow input")
    expect(page.locator(".flow-missing")).to_have_count(1)
    expect(page.locator(".flow-missing")).to_contain_text("audience")
    expect(page.locator("#check-status")).to_have_attribute("data-ready", "false")

    page.get_by_role("button", name="Add input").click()
    page.get_by_label("Input name").last.fill("audience")
    expect(step_one_problems).to_be_empty()
    expect(page.locator("#check-status")).to_have_attribute("data-ready", "true")
    expect(page.locator('.flow-node[data-step="2"]')).to_contain_text("from step outline")

    page.get_by_role("button", name="Create workflow").click()
    page.wait_for_url(re.compile(r"/workflows/\d+/$"))
    workflow = Workflow.objects.get(name="article")
    assert workflow.input_names == ["topic", "audience"]

    page.get_by_role("link", name="Run", exact=True).click()
    page.wait_for_url(re.compile(rf"/run/{workflow.pk}/$"))
    page.get_by_label("topic").fill("tides")
    page.get_by_label("audience").fill("kids")
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    page.wait_for_selector("#run-status [data-status=succeeded]")
