"""A model's reasoning on the run pages, through Django's test client: folded apart from the answer, with
the reasoning and cached token counts in the step's metrics. The live page is in tests/browser/test_reasoning_browser.py."""
import html
import re

import pytest

from runs.models import Response, Run
from tests.runs_pages.conftest import finished_run

OUTPUTS = ["An outline", "A paragraph", "A summary"]
REASONING = "The tides rise twice a day; <start> with the moon."


def with_reasoning(run: Run, index: int = 0) -> Response:
    Response.objects.filter(run=run, index=index).update(
        reasoning=REASONING, reasoning_tokens=80, completion_tokens=120, cached_tokens=256, prompt_tokens=512)
    return Response.objects.get(run=run, index=index)


def step_html(page: str, index: int) -> str:
    start = page.index(f'id="step-{index}"')
    end = page.find('id="step-', start + 1)
    return page[start:end if end > 0 else page.index('id="step-template"')]


def reasoning_box(part: str) -> str:
    return re.search(r'<details class="reasoning"[^>]*>.*?</details>', part, re.S).group(0)


@pytest.mark.django_db
def test_a_step_with_reasoning_shows_it_folded_apart_from_the_answer_with_its_token_counts(user_client, article):
    run = finished_run(article, {"topic": "tides"}, OUTPUTS)
    with_reasoning(run)
    page = user_client.get(f"/runs/{run.pk}/").content.decode()
    step = step_html(page, 0)

    box = reasoning_box(step)
    assert " open" not in box.split(">")[0] and " hidden" not in box.split(">")[0]  # shown, and closed
    assert re.search(r"<summary>Reasoning<span[^>]*> \(80 tokens\)</span></summary>", box)
    assert html.unescape(re.search(r'data-field="reasoning"[^>]*>(.*?)</pre>', box, re.S).group(1)) == REASONING
    answer = re.search(r'data-field="output"[^>]*>(.*?)</pre>', step, re.S).group(1)
    assert answer == "An outline"  # the reasoning is not part of the answer's text
    assert step.index('data-field="output"') < step.index('class="reasoning"') < step.index('data-field="metrics"')

    assert re.search(r'<li data-field="reasoning_tokens_item">Reasoning tokens <strong[^>]*>80 of 120 out</strong>', step)
    assert re.search(r'<li data-field="cached_tokens_item">Cached tokens <strong[^>]*>256 of 512 in</strong>', step)


@pytest.mark.django_db
def test_a_step_without_reasoning_hides_the_box_and_the_counts_the_server_did_not_report(user_client, article):
    run = finished_run(article, {"topic": "tides"}, OUTPUTS)
    with_reasoning(run, index=0)
    Response.objects.filter(run=run, index=2).update(cached_tokens=0)
    page = user_client.get(f"/runs/{run.pk}/").content.decode()

    step = step_html(page, 1)
    assert '<details class="reasoning" data-field="reasoning_box" hidden>' in step
    assert '<li data-field="reasoning_tokens_item" hidden>' in step and '<li data-field="cached_tokens_item" hidden>' in step
    # Zero cached tokens was reported: not shown either (OpenAI reports 0 of each for every ordinary answer).
    step = step_html(page, 2)
    assert '<li data-field="cached_tokens_item" hidden>' in step
    # The blank step that live steps are cloned from has the box, hidden, for run-detail.js to fill.
    blank = page[page.index('id="step-template"'):]
    assert '<details class="reasoning" data-field="reasoning_box" hidden>' in blank
    assert 'data-field="reasoning_tokens_item" hidden' in blank


@pytest.mark.django_db
def test_reasoning_of_the_server_is_in_the_run_api_and_a_replay_copies_it(user_client, api, article):
    source = finished_run(article, {"topic": "tides", "tone": "plain"}, OUTPUTS)
    with_reasoning(source)
    response = user_client.post(f"/runs/{source.pk}/replay/", {"from_step": "1", "topic": "winds", "tone": "plain"})
    replay = Run.objects.exclude(pk=source.pk).get()
    assert response.status_code == 302

    step = step_html(user_client.get(f"/runs/{replay.pk}/").content.decode(), 0)
    assert REASONING in html.unescape(reasoning_box(step))
    assert "80 of 120 out" in step and "256 of 512 in" in step
    copied = api.get(f"/api/runs/{replay.pk}/").json()["responses"][0]
    assert (copied["status"], copied["reasoning"], copied["reasoning_tokens"], copied["cached_tokens"]) == \
        ("copied", REASONING, 80, 256)


@pytest.mark.django_db
def test_the_compare_page_shows_each_side_s_reasoning_folded_under_its_output(user_client, article):
    left = finished_run(article, {"topic": "tides"}, OUTPUTS)
    right = finished_run(article, {"topic": "tides"}, OUTPUTS)
    with_reasoning(right)
    page = user_client.get(f"/runs/compare/?a={left.pk}&b={right.pk}").content.decode()
    assert page.count('<details class="reasoning"') == 1
    step = page[page.index('id="compare-step-0"'):page.index('id="compare-step-1"')]
    right_side = step[step.index('data-side="right"'):]
    assert REASONING in html.unescape(reasoning_box(right_side))
    assert "80 of 120 out" in right_side and "256 of 512 in" in right_side
    assert "Reasoning tokens" not in step[:step.index('data-side="right"')]
