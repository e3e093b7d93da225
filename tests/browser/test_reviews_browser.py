"""A person reviews an experiment's cells in headless Chromium: keyboard shortcuts save good and bad
verdicts in the dataset's order, the help opens with "?", typing in the comment presses nothing, and the
blinded A/B queue names the variants only once a choice is saved."""
import pytest

from evaluations.models import Preference, Review
from experiments.models import Cell
from tests.experiments.conftest import make_dataset_version, make_two_releases, start_experiment

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def finished_experiment(browser, page, fake_llm, rows: int = 3):  # type: ignore[no-untyped-def]
    """Two variants over `rows` cases, driven by the server's embedded driver; the page shows when it ends."""
    workflow, first, second = make_two_releases(fake_llm.base_url)
    experiment = start_experiment(workflow, make_dataset_version(rows), [first, second])
    browser.login(page, path=f"/experiments/{experiment.pk}/")
    page.wait_for_selector("#experiment-status [data-status=finished]", timeout=60_000)
    return experiment


def next_cell(page, cell) -> None:  # type: ignore[no-untyped-def]
    """Wait for the queue to show `cell`, and for its page's scripts: a key pressed before the shortcuts
    are listening would be lost (the page is shown as it is parsed)."""
    page.wait_for_selector(f"#review[data-cell='{cell.pk}']")
    page.wait_for_load_state("load")


def test_keys_g_and_b_save_verdicts_in_order_and_help_opens_with_a_question_mark(browser, admin_user, fake_llm):
    page = browser.new_page()
    experiment = finished_experiment(browser, page, fake_llm)
    cells = list(Cell.objects.filter(experiment=experiment).order_by("position", "repeat", "variant__position"))
    page.goto(f"{browser.base_url}/experiments/{experiment.pk}/review/")
    assert page.locator("#review").get_attribute("data-cell") == str(cells[0].pk)
    assert page.locator("#review-progress").inner_text() == "0 of 6 reviewed"

    page.keyboard.press("?")
    assert page.get_by_role("dialog", name="Keyboard shortcuts").is_visible()
    page.keyboard.press("Escape")
    assert page.locator("#shortcut-help").is_hidden()

    # Typing in the comment presses nothing; away from the boxes, the key saves the verdict with them.
    page.get_by_label("Comment").fill("good but brief")
    page.get_by_label("Comment").press("g")
    assert page.get_by_label("Comment").input_value() == "good but briefg"
    page.get_by_label("Comment").fill("good but brief")
    page.get_by_label("Score").fill("0.7")
    page.evaluate("document.activeElement.blur()")
    assert not Review.objects.exists()
    page.keyboard.press("g")
    next_cell(page, cells[1])
    assert page.locator("#review-progress").inner_text() == "1 of 6 reviewed"
    page.keyboard.press("b")
    next_cell(page, cells[2])
    page.keyboard.press("s")  # skip: no review
    next_cell(page, cells[3])
    # The buttons work without the keyboard, and show their focus.
    page.get_by_role("button", name="Bad").focus()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.get_by_role("button", name="Bad").click()
    next_cell(page, cells[4])
    reviews = {r.run_id: r for r in Review.objects.all()}
    assert set(reviews) == {cells[0].run_id, cells[1].run_id, cells[3].run_id}
    assert (reviews[cells[0].run_id].verdict, reviews[cells[0].run_id].score,
            reviews[cells[0].run_id].comment) == ("good", 0.7, "good but brief")
    assert reviews[cells[1].run_id].verdict == "bad" and reviews[cells[3].run_id].verdict == "bad"


def test_blinded_ab_hides_the_variant_names_until_the_choice_is_saved(browser, admin_user, fake_llm):
    page = browser.new_page()
    experiment = finished_experiment(browser, page, fake_llm, rows=2)
    names = list(experiment.variants.order_by("position").values_list("name", flat=True))
    page.goto(f"{browser.base_url}/experiments/{experiment.pk}/review/ab/")
    blinded = page.locator("#ab").inner_text()
    assert page.locator("#ab").get_attribute("data-pair") == "0-0"
    assert all(name not in blinded for name in names), blinded
    assert page.locator("#ab-reveal").count() == 0
    page.keyboard.press("ArrowLeft")  # A was better
    page.wait_for_selector("#ab-reveal")
    reveal = page.locator("#ab-reveal").inner_text()
    assert "you chose A" in reveal and all(name in reveal for name in names)
    assert page.locator("#ab").get_attribute("data-pair") == "1-0"
    assert all(name not in page.locator("#ab").inner_text() for name in names)
    page.get_by_role("button", name="Tie").click()
    page.wait_for_selector("#review-done")
    assert "you chose a tie" in page.locator("#ab-reveal").inner_text()
    assert sorted(Preference.objects.values_list("choice", flat=True))[-1] == "tie"
    assert Preference.objects.count() == 2
