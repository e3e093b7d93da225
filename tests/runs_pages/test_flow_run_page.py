"""The run page of a workflow with control flow (issue 22): steps of one level side by side, a map's
items as a grid whose cells open one item, a skipped step with its default, progress in items."""
import re

import pytest

from tests.factories import make_endpoint
from tests.flow_factories import CLAIMS, make_flow_run, make_flow_workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def workflow(db):
    return make_flow_workflow(make_endpoint(name="local"))


def _levels(html: str) -> dict[str, list[str]]:
    """Step ids by level row, as drawn."""
    rows = re.findall(r'<li class="step-level" data-level="(\d+)">(.*?)</ol></li>', html, re.S)
    return {level: re.findall(r'id="step-(\d+)"', body) for level, body in rows}


def test_steps_of_one_level_share_a_row_and_a_map_shows_a_cell_per_item(user_client, workflow):
    run = make_flow_run(workflow, items={1: "succeeded", 3: "failed"})
    html = user_client.get(f"/runs/{run.pk}/").content.decode()
    assert _levels(html) == {"0": ["0", "1"], "1": ["2"]}
    step_two = html.split('id="step-2"')[1]
    cells = re.findall(r'class="item-cell" data-item="(\d)" data-status="(\w+)"', step_two)
    assert cells == [("1", "succeeded"), ("2", "pending"), ("3", "failed")]  # item 2 is not recorded yet
    assert '<span data-field="items_done">2</span> of <span data-field="item_count">3</span> items' in step_two
    # Units: claims 1, translated 1 (skipped counts as done), the map's three items (two are done).
    assert re.search(r'<span data-field="done">4</span> of <span data-field="total">5</span> '
                     r'<span data-field="unit">steps and items</span> done', html)


def test_a_skipped_step_says_so_and_shows_its_default(user_client, workflow):
    run = make_flow_run(workflow, items={})
    html = user_client.get(f"/runs/{run.pk}/").content.decode()
    step_one = html.split('id="step-1"')[1].split('id="step-2"')[0]
    assert 'data-status="skipped"' in step_one
    assert "Skipped: its condition was false" in step_one.split('data-field="skipped_note"')[1].split("</p>")[0]
    assert '<pre class="output" data-field="output" tabindex="0" aria-label="Output of this step">(English)</pre>' in step_one
    assert '<ul class="metrics" data-field="metrics" hidden>' in step_one  # no call: no tokens, latency or cost


def test_a_finished_map_counts_its_items_from_its_output(user_client, workflow):
    run = make_flow_run(workflow, items={1: "succeeded", 2: "succeeded", 3: "failed"}, status="succeeded",
                        map_done=True)
    html = user_client.get(f"/runs/{run.pk}/").content.decode()
    assert re.search(r'<span data-field="done">5</span> of <span data-field="total">5</span>', html)
    assert 'id="step-2" data-map="true"' in html
    assert "3.2 checked" in html  # the charts name an item by step and item


def test_an_item_opens_with_its_value_answer_error_and_prompt(user_client, workflow):
    run = make_flow_run(workflow, items={1: "succeeded", 3: "failed"})
    item = user_client.get(f"/runs/{run.pk}/steps/2/prompt/?item=3").content.decode()
    assert "&quot;Barrages hold water back.&quot;" in item and "HTTP 500" in item
    assert f"Is it true? {CLAIMS[2]}" in item
    assert "has not finished yet" in user_client.get(f"/runs/{run.pk}/steps/2/prompt/?item=2").content.decode()
    assert user_client.get(f"/runs/{run.pk}/steps/2/prompt/?item=x").status_code == 400
    # Without an item: the step's own row, never one of its items.
    assert "No messages were recorded" in user_client.get(f"/runs/{run.pk}/steps/1/prompt/").content.decode()


def test_a_plain_chain_still_counts_steps(user_client, workflow):
    from tests.factories import make_chain
    from tests.runs_pages.conftest import finished_run
    chain = make_chain(make_endpoint(name="other"), name="plain")
    run = finished_run(chain, {"topic": "x"}, ["a", "b", "c"])
    html = user_client.get(f"/runs/{run.pk}/").content.decode()
    assert _levels(html) == {"0": ["0"], "1": ["1"], "2": ["2"]}
    assert re.search(r'<span data-field="done">3</span> of <span data-field="total">3</span> '
                     r'<span data-field="unit">steps</span> done', html)


def test_compare_matches_map_items_by_step_and_item(user_client, workflow):
    from runs.models import Response
    left = make_flow_run(workflow, items={1: "succeeded", 2: "succeeded"}, status="succeeded")
    right = make_flow_run(workflow, items={1: "succeeded", 2: "succeeded", 3: "succeeded"}, status="succeeded")
    Response.objects.filter(run=right, index=2, item=2).update(output="false")
    page = user_client.get(f"/runs/compare/?a={left.pk}&b={right.pk}").content.decode()
    blocks = dict(re.findall(r'id="compare-step-(2-item-\d)" data-item="\d" data-changed="(\w+)"', page))
    # Item 1 the same on both sides, item 2 answered differently, item 3 only on the right.
    assert blocks == {"2-item-1": "false", "2-item-2": "true", "2-item-3": "true"}
    assert "Step 3, item 2 · " in page
