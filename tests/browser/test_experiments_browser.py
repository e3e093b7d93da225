"""A person starts an experiment from its form in headless Chromium against daphne and the fake LLM,
and watches its progress bar fill over ws/experiments/<id>/ until it is finished and the matrix full."""
import re

import pytest

from experiments.models import Experiment
from tests.experiments.conftest import make_dataset_version, make_two_releases

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every value the progress bar and the status badge take, in order, from the moment it is installed.
BAR_RECORDER = """
window.__bar = [];
const bar = document.getElementById('experiment-bar');
const badge = document.querySelector('#experiment-status [data-field=status]');
const record = () => window.__bar.push({done: Number(bar.getAttribute('aria-valuenow')), status: badge.dataset.status,
                                        conn: document.getElementById('experiment-conn').dataset.state});
record();
new MutationObserver(record).observe(bar, {attributes: true});
new MutationObserver(record).observe(badge, {attributes: true});
new MutationObserver(record).observe(document.getElementById('experiment-conn'), {attributes: true});
"""


def test_a_person_starts_an_experiment_and_watches_its_progress_bar_fill_to_finished(browser, admin_user, fake_llm):
    fake_llm.control(latency_ms=400)
    workflow, first, second = make_two_releases(fake_llm.base_url)
    version = make_dataset_version(8)
    page = browser.new_page()
    browser.login(page, path="/experiments/")
    page.get_by_role("link", name="New experiment").click()
    page.get_by_label("Name").fill("brief or detailed")
    # Picking the workflow, then the dataset, reloads the form with their variants and mapping (htmx).
    page.get_by_label("Workflow").select_option(str(workflow.pk))
    page.get_by_label(re.compile(rf"Release r{second.number}\b")).wait_for()
    page.locator("#id_dataset").select_option(str(version.dataset_id))
    page.locator("#id_map_topic").wait_for()
    assert page.locator("#id_map_topic").input_value() == "topic"  # the column of the same name
    assert page.get_by_label("Name").input_value() == "brief or detailed"  # kept across the reloads
    page.get_by_label(re.compile(rf"Release r{first.number}\b")).check()
    page.get_by_label(re.compile(rf"Release r{second.number}\b")).check()
    page.get_by_label("Concurrency").fill("2")
    page.get_by_role("button", name="Start experiment").click()
    page.wait_for_url(re.compile(r"/experiments/\d+/$"))
    page.evaluate(BAR_RECORDER)

    page.wait_for_selector("#experiment-status [data-status=finished]", timeout=60_000)
    bar = page.locator("#experiment-bar")
    assert bar.get_attribute("aria-valuenow") == "16" and bar.get_attribute("aria-valuemax") == "16"
    assert page.locator("#experiment-progress [data-field=succeeded]").inner_text() == "16"
    seen = page.evaluate("window.__bar")
    live_at = next(i for i, entry in enumerate(seen) if entry["conn"] == "live")
    moving = {entry["done"] for entry in seen[live_at:] if 0 < entry["done"] < 16}
    assert moving, f"the bar never showed a step between start and done: {seen}"
    assert [entry["done"] for entry in seen] == sorted(entry["done"] for entry in seen)
    assert page.locator("#cancel-form").is_hidden()
    # The matrix was reloaded at the end: every cell shows its output and links to its run.
    page.locator("#matrix td.cell[data-status=succeeded] a").nth(15).wait_for()
    assert page.locator("#matrix tr[data-position]").count() == 8
    experiment = Experiment.objects.get()
    assert experiment.status == "finished" and experiment.succeeded == 16
