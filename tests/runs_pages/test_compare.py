"""Comparing two runs side by side: the word diff, how runs are picked, and bad picks."""
import html

import pytest
from django.test import Client

from core.diffing import word_diff
from tests.runs_pages.conftest import client_with, finished_run

OUTLINE = "Tides rise and fall twice a day."


def test_word_diff_marks_only_the_changed_word_on_each_side():
    diff = word_diff("The tide rises fast today", "The tide rises slowly today")
    assert [s.text for s in diff.left if s.changed] == ["fast"]
    assert [s.text for s in diff.right if s.changed] == ["slowly"]
    assert "".join(s.text for s in diff.left) == "The tide rises fast today"
    assert diff.changed_words == 1


def test_word_diff_ignores_whitespace_only_changes_and_keeps_the_text_exact():
    diff = word_diff("a  b\nc", "a b c")
    assert diff.is_same
    assert "".join(s.text for s in diff.right) == "a b c"


def test_word_diff_of_an_added_sentence_marks_the_new_words_only():
    diff = word_diff("One.", "One. Two three.")
    assert [s.text for s in diff.right if s.changed] == ["Two three."]
    assert diff.changed_words == 2


@pytest.mark.django_db
def test_the_comparison_highlights_a_changed_word_in_inputs_prompts_and_outputs(user_client, article):
    left = finished_run(article, {"topic": "tides"}, [OUTLINE, "Waves are pulled by the moon."], latencies=[1000, 2000])
    right = finished_run(article, {"topic": "winds"}, [OUTLINE, "Waves are pushed by the wind."], latencies=[1000, 2500])
    response = user_client.get(f"/runs/compare/?a={left.pk}&b={right.pk}")
    assert response.status_code == 200
    page = response.content.decode()
    assert "<del>tides</del>" in page and "<ins>winds</ins>" in page  # the input
    assert "<del>tides.</del>" in page and "<ins>winds.</ins>" in page  # the rendered prompts
    assert "<del>pulled</del>" in page and "<ins>pushed</ins>" in page  # the output of step 2
    assert "<del>moon.</del>" in page and "<ins>wind.</ins>" in page
    comparison = response.context["comparison"]
    first, second = comparison["steps"]
    assert first.output.is_same and not second.output.is_same
    assert second.latency_delta == "+500 ms" and second.tokens_delta == "0"
    assert comparison["changed_inputs"] == 1 and comparison["changed_steps"] == 2  # step 1's prompt differs


@pytest.mark.django_db
def test_two_ticked_rows_of_the_runs_list_open_their_comparison_older_run_first(user_client, article):
    left = finished_run(article, {"topic": "tides"}, [OUTLINE])
    right = finished_run(article, {"topic": "tides"}, [OUTLINE])
    listing = user_client.get("/runs/").content.decode()
    assert 'id="compare-form"' in listing and f'name="run" value="{left.pk}" form="compare-form"' in listing
    response = user_client.get(f"/runs/compare/?run={right.pk}&run={left.pk}")
    assert response.status_code == 200
    assert response.context["left"].pk == left.pk and response.context["right"].pk == right.pk  # older on the left
    assert "0 inputs and 0 steps differ" in html.unescape(response.content.decode())


@pytest.mark.django_db
def test_ticking_three_runs_asks_for_exactly_two(user_client, article):
    runs = [finished_run(article, {"topic": t}, [OUTLINE]) for t in ("a", "b", "c")]
    response = user_client.get("/runs/compare/?" + "&".join(f"run={r.pk}" for r in runs))
    assert response.status_code == 400
    assert "Tick exactly two runs to compare; 3 were ticked." in response.content.decode()
    assert "comparison" not in response.context


@pytest.mark.django_db
def test_an_unknown_or_repeated_run_is_named_next_to_its_field(user_client, article):
    run = finished_run(article, {"topic": "tides"}, [OUTLINE])
    missing = user_client.get(f"/runs/compare/?a={run.pk}&b=987654")
    assert missing.status_code == 400
    assert missing.context["form"].errors == {"b": ["There is no run #987654."]}
    assert 'id="id_b_errors"' in missing.content.decode()
    same = user_client.get(f"/runs/compare/?a={run.pk}&b={run.pk}")
    assert same.status_code == 400 and same.context["form"].errors == {"b": ["Choose a different run than the first one."]}
    words = user_client.get("/runs/compare/?a=x&b=")
    assert set(words.context["form"].errors) == {"a", "b"}


@pytest.mark.django_db
def test_the_compare_page_without_runs_shows_the_picker(user_client):
    response = user_client.get("/runs/compare/")
    assert response.status_code == 200 and 'id="compare-pick"' in response.content.decode()


@pytest.mark.django_db
def test_comparing_needs_the_view_permission(article):
    left = finished_run(article, {"topic": "a"}, [OUTLINE])
    right = finished_run(article, {"topic": "b"}, [OUTLINE])
    url = f"/runs/compare/?a={left.pk}&b={right.pk}"
    assert Client().get(url).status_code == 302
    assert client_with().get(url).status_code == 403
    assert client_with("runs.view_run").get(url).status_code == 200
