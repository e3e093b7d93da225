"""Human review: people's verdicts on cells and runs, the review queue walking unreviewed cells in the
dataset's order, blinded A/B choices (no variant names until saved), agreement with the judges on a
hand-made example driven through the real engine, permissions on pages and API, 400s naming the
field, and the prune keeping reviewed runs."""
from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from evaluations.models import Preference, Review
from evaluations.reviews import judge_verdict, preference_set, review_set
from experiments.models import Cell, Experiment
from experiments.reviews import (
    _swapped,
    ab_pairs,
    experiment_agreement,
    pair_preferences,
    review_progress,
    variant_reviews,
)
from runs.models import Run, RunStatus
from runs.retention import runs_prune
from tests.evaluations.test_judges import judge_all
from tests.experiments.conftest import make_dataset_version, make_two_releases, start_experiment
from tests.experiments.test_driver import drive
from tests.factories import make_run

pytestmark = pytest.mark.django_db(transaction=True)


async def driven(fake_llm, rows: int = 3, **fields) -> Experiment:  # type: ignore[no-untyped-def]
    """`rows` cases x two variants (A's prompt says "briefly", B's "detail"), run to the end."""
    workflow, first, second = await sync_to_async(make_two_releases)(fake_llm.base_url)
    version = await sync_to_async(make_dataset_version)(rows)
    experiment = await sync_to_async(start_experiment)(workflow, version, [first, second], **fields)
    experiment = await drive(experiment.pk)
    assert experiment.succeeded == rows * 2
    return experiment


def cells_in_order(experiment: Experiment) -> list[Cell]:
    return list(Cell.objects.filter(experiment=experiment).select_related("variant")
                .order_by("position", "repeat", "variant__position"))


def shown_cell(page: str) -> int:
    found = re.search(r'<div id="review" data-cell="(\d+)"', page)
    assert found, "no cell on the page"
    return int(found.group(1))


# --- The queue --------------------------------------------------------------------------------------

def walk_the_queue(experiment: Experiment, user) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    url = reverse("experiments:review", args=[experiment.pk])
    cells = cells_in_order(experiment)
    other = get_user_model().objects.create_user("other")
    review_set(run=cells[0].run_id, reviewer=user, verdict="good")  # already reviewed: the queue skips it
    review_set(run=cells[1].run_id, reviewer=other, verdict="bad")  # someone else's review does not count

    page = client.get(url).content.decode()
    assert shown_cell(page) == cells[1].pk
    assert "<strong data-field=\"reviewed\">1</strong> of <strong data-field=\"total\">6</strong> reviewed" in page
    assert cells[1].variant.name in page and (cells[1].run.output or "") in page
    # Good, with a score and a comment: saved, and the next cell follows.
    response = client.post(url, {"cell": cells[1].pk, "verdict": "good", "score": "0.8", "comment": "fine"})
    assert response.status_code == 302 and f"after={cells[1].pk}" in response["Location"]
    review = Review.objects.get(run_id=cells[1].run_id, reviewer=user)
    assert (review.verdict, review.score, review.comment) == ("good", 0.8, "fine")
    assert shown_cell(client.get(response["Location"]).content.decode()) == cells[2].pk
    # Skip walks past a cell without reviewing it; the one after follows.
    skipped = client.get(url, {"after": cells[2].pk}).content.decode()
    assert shown_cell(skipped) == cells[3].pk
    for cell in cells[3:]:
        client.post(url, {"cell": cell.pk, "verdict": "bad"})
    end = client.get(url, {"after": cells[-1].pk}).content.decode()
    assert 'id="review-done"' in end and "1 is left that you skipped" in end
    # From the start again: only the skipped cell is left.
    assert shown_cell(client.get(url).content.decode()) == cells[2].pk
    assert review_progress(experiment, user).reviewed == 5
    # Reviewing again replaces the review: still one per run and reviewer.
    client.post(url, {"cell": cells[3].pk, "verdict": "good", "comment": "on second thought"})
    assert Review.objects.filter(run_id=cells[3].run_id, reviewer=user).get().verdict == "good"
    # One variant only.
    only = client.get(url, {"variant": cells[1].variant_id}).content.decode()
    assert "of <strong data-field=\"total\">3</strong> reviewed" in only


async def test_the_queue_walks_unreviewed_cells_in_order_and_skips_reviewed_ones(user, fake_llm):
    experiment = await driven(fake_llm)
    await sync_to_async(walk_the_queue)(experiment, user)


def bad_review_input(experiment: Experiment, user) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    url = reverse("experiments:review", args=[experiment.pk])
    cell = cells_in_order(experiment)[0]
    for data, field in (({"verdict": "meh"}, "verdict"), ({"verdict": "good", "score": "1.5"}, "score"),
                        ({"verdict": "good", "score": "lots"}, "score")):
        response = client.post(url, {"cell": cell.pk, **data})
        assert response.status_code == 400, data
        assert f"{field}: " in response.content.decode()
        assert shown_cell(response.content.decode()) == cell.pk  # the same cell, to correct
    assert client.post(url, {"cell": 10**9, "verdict": "good"}).status_code == 400
    assert not Review.objects.exists()


async def test_a_bad_verdict_or_score_on_the_page_is_refused_naming_the_field(user, fake_llm):
    experiment = await driven(fake_llm, rows=1)
    await sync_to_async(bad_review_input)(experiment, user)


# --- Blinded A/B --------------------------------------------------------------------------------------

def compare_blind(experiment: Experiment, user) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    url = reverse("experiments:review-ab", args=[experiment.pk])
    first, second = list(experiment.variants.order_by("position"))
    first.name, second.name = "variant-brief-zq", "variant-detail-zq"  # names easy to find on a page
    first.save()
    second.save()
    page = client.get(url).content.decode()
    pair = re.search(r'<div id="ab" data-pair="([\d-]+)">(.*?)</form>', page, re.S)
    assert pair and pair.group(1) == "0-0"
    assert "variant-brief-zq" not in pair.group(2) and "variant-detail-zq" not in pair.group(2)
    assert "/runs/" not in pair.group(2)  # no link to a run page, which would name the release
    # Sides are shuffled per case, the same each time this reviewer sees it.
    pairs = ab_pairs(experiment, first, second, user)
    assert [p.key for p in pairs] == ["0-0", "1-0", "2-0", "3-0", "4-0", "5-0"]
    # Each case's side follows the reviewer's shuffle (that it mixes sides is shown over fixed ids below).
    assert [p.shown_a.variant_id for p in pairs] == [
        second.pk if _swapped(experiment, p.position, p.repeat, user) else first.pk for p in pairs]
    assert [p.shown_a.pk for p in pairs] == [p.shown_a.pk for p in ab_pairs(experiment, first, second, user)]
    shown_a = pairs[0].shown_a
    assert (pairs[0].shown_a.run.output or "") in pair.group(2)

    response = client.post(url, {"pair": "0-0", "a": first.pk, "b": second.pk, "choice": "a", "comment": "crisper"})
    assert response.status_code == 302 and "revealed=0-0" in response["Location"]
    revealed = client.get(response["Location"]).content.decode()
    reveal = re.search(r'<div class="alert alert-success" id="ab-reveal".*?</div>', revealed, re.S)
    assert reveal and f"A was <strong data-field=\"revealed-a\">{shown_a.variant.name}</strong>" in reveal.group(0)
    assert re.search(r'<div id="ab" data-pair="1-0">', revealed)  # the next case, blinded again
    preference = Preference.objects.get()
    preferred = pairs[0].shown_a.run_id
    assert preference.choice == ("a" if preference.run_a_id == preferred else "b")
    # Choosing again for the same pair replaces the choice; a tie counts apart.
    client.post(url, {"pair": "0-0", "a": first.pk, "b": second.pk, "choice": "tie"})
    client.post(url, {"pair": "1-0", "a": first.pk, "b": second.pk, "choice": "b"})
    assert Preference.objects.count() == 2
    counts = pair_preferences(experiment)
    assert len(counts) == 1 and counts[0].ties == 1 and counts[0].first_wins + counts[0].second_wins == 1
    winner = pairs[1].shown_b.variant_id
    assert (counts[0].first_wins if winner == first.pk else counts[0].second_wins) == 1
    assert "<strong data-field=\"reviewed\">2</strong> of <strong data-field=\"total\">6</strong>" in \
        client.get(url).content.decode()
    assert client.post(url, {"pair": "9-9", "a": first.pk, "b": second.pk, "choice": "a"}).status_code == 400
    assert client.post(url, {"pair": "2-0", "a": first.pk, "b": second.pk, "choice": "left"}).status_code == 400


async def test_blinded_ab_shows_no_variant_names_until_the_choice_is_saved(user, fake_llm):
    experiment = await driven(fake_llm, rows=6)
    await sync_to_async(compare_blind)(experiment, user)


# --- Agreement ------------------------------------------------------------------------------------------

def test_the_judges_verdict_is_read_from_judged_results_at_any_depth():
    assert judge_verdict([{"type": "contains", "outcome": "fail"}]) is None
    assert judge_verdict([{"type": "llm-rubric", "outcome": "pass"}, {"type": "contains", "outcome": "fail"}]) == "good"
    assert judge_verdict([{"type": "assert-set", "outcome": "fail", "children": [
        {"type": "factuality", "outcome": "pass"}, {"type": "not-llm-rubric", "outcome": "fail"}]}]) == "bad"
    assert judge_verdict([{"type": "llm-rubric", "outcome": "error"}]) is None


def review_for_agreement(experiment: Experiment, user) -> None:  # type: ignore[no-untyped-def]
    cells = {(c.position, c.variant.position): c for c in cells_in_order(experiment)}
    # Checks: variant 0 passes ("briefly"), variant 1 fails; the (fake) judge says pass on all four.
    verdicts = {(0, 0): "good", (1, 0): "bad", (0, 1): "bad", (1, 1): "bad"}
    for key, verdict in verdicts.items():
        review_set(run=cells[key].run_id, reviewer=user, verdict=verdict)
    agreement = experiment_agreement(experiment)
    assert (agreement.judge.agreed, agreement.judge.compared) == (1, 4) and agreement.judge.percent == 25
    assert (agreement.checks.agreed, agreement.checks.compared) == (3, 4) and agreement.checks.percent == 75
    # A second person's review counts as one more comparison; a run outside the experiment does not count.
    other = get_user_model().objects.create_user("second")
    review_set(run=cells[(0, 0)].run_id, reviewer=other, verdict="good", score=1)
    loose = make_run(workflow=experiment.workflow, workflow_name="x", status=RunStatus.SUCCEEDED)
    review_set(run=loose, reviewer=user, verdict="good")
    agreement = experiment_agreement(experiment)
    assert (agreement.judge.agreed, agreement.judge.compared) == (2, 5)
    assert (agreement.checks.agreed, agreement.checks.compared) == (4, 5)
    per_variant = {entry.variant.position: entry for entry in variant_reviews(experiment)}
    assert (per_variant[0].good, per_variant[0].bad, per_variant[1].good, per_variant[1].bad) == (2, 1, 0, 2)
    client = Client()
    client.force_login(user)
    summary = client.get(reverse("experiments:reviews", args=[experiment.pk])).content.decode()
    assert '<strong data-field="judge-agreement">40&nbsp;%</strong>' in summary and "2 of 5 reviews" in summary
    assert '<strong data-field="checks-agreement">80&nbsp;%</strong>' in summary and "4 of 5 reviews" in summary


async def test_agreement_between_people_and_the_judges_is_computed_where_both_exist(user, fake_llm):
    workflow, first, second = await sync_to_async(make_two_releases)(fake_llm.base_url)
    endpoint = await sync_to_async(lambda: workflow.steps.first().payload.endpoint.name)()
    await sync_to_async(call_command)("seed_judges", endpoint=endpoint)
    version = await sync_to_async(make_dataset_version)(2)
    experiment = await sync_to_async(start_experiment)(workflow, version, [first, second], assertions=[
        {"type": "llm-rubric", "value": "Answers about {{ topic }}"}, {"type": "icontains", "value": "briefly"}])
    experiment = await drive(experiment.pk)
    evaluation = await judge_all()
    assert (evaluation.passed, evaluation.failed, evaluation.errors) == (2, 2, 0)
    await sync_to_async(review_for_agreement)(experiment, user)


# --- Services, API and permissions -------------------------------------------------------------------------

@pytest.mark.django_db
def test_the_services_refuse_bad_input_naming_the_field(user):
    run = make_run(status=RunStatus.SUCCEEDED, inputs={"topic": "a"})
    running = make_run(status=RunStatus.RUNNING, inputs={"topic": "a"})
    other_case = make_run(status=RunStatus.SUCCEEDED, inputs={"topic": "b"})
    cases = [(dict(run=run.pk, verdict="fine"), "verdict"), (dict(run=run.pk, verdict="good", score=2), "score"),
             (dict(run=run.pk, verdict="good", score=True), "score"), (dict(run=10**9, verdict="good"), "run"),
             (dict(run=running.pk, verdict="good"), "run")]
    for fields, name in cases:
        with pytest.raises(ValidationError) as raised:
            review_set(reviewer=user, **fields)
        assert list(raised.value.message_dict) == [name], fields
    for fields, name in ((dict(run_a=run.pk, run_b=other_case.pk, choice="a"), "run_b"),
                         (dict(run_a=run.pk, run_b=run.pk, choice="a"), "run_b"),
                         (dict(run_a=run.pk, run_b=10**9, choice="a"), "run_b"),
                         (dict(run_a=run.pk, run_b=other_case.pk, choice="A"), "choice")):
        with pytest.raises(ValidationError) as raised:
            preference_set(reviewer=user, **fields)
        assert list(raised.value.message_dict) == [name], fields
    assert not Review.objects.exists() and not Preference.objects.exists()


@pytest.mark.django_db
def test_a_preference_is_stored_lower_run_first_whichever_way_it_was_shown(user):
    first = make_run(status=RunStatus.SUCCEEDED, inputs={"topic": "a"})
    second = make_run(status=RunStatus.SUCCEEDED, inputs={"topic": "a"})
    saved, created = preference_set(run_a=second.pk, run_b=first.pk, reviewer=user, choice="a")
    assert created and (saved.run_a_id, saved.run_b_id, saved.choice) == (first.pk, second.pk, "b")
    again, created = preference_set(run_a=first.pk, run_b=second.pk, reviewer=user, choice="tie")
    assert not created and again.pk == saved.pk and again.choice == "tie"


@pytest.mark.django_db
def test_the_api_saves_your_review_replaces_it_and_names_the_bad_field(api, api_with_perms, client, user):
    run = make_run(status=RunStatus.SUCCEEDED, inputs={"topic": "a"})
    twin = make_run(status=RunStatus.SUCCEEDED, inputs={"topic": "a"})
    other = make_run(status=RunStatus.SUCCEEDED, inputs={"topic": "b"})
    created = api.post("/api/reviews/", {"run": run.pk, "verdict": "good", "score": 0.5, "comment": "ok"}, format="json")
    assert created.status_code == 201 and created.json()["reviewer"] == user.get_username()
    replaced = api.post("/api/reviews/", {"run": run.pk, "verdict": "bad"}, format="json")
    assert replaced.status_code == 200 and replaced.json()["id"] == created.json()["id"]
    assert replaced.json()["verdict"] == "bad" and replaced.json()["score"] is None
    for body, field in (({"run": run.pk, "verdict": "great"}, "verdict"), ({"run": run.pk, "verdict": "good",
                        "score": 1.01}, "score"), ({"run": 10**9, "verdict": "good"}, "run"),
                        ({"run": run.pk, "verdict": "good", "colour": 1}, "colour"), ({"verdict": "good"}, "run")):
        response = api.post("/api/reviews/", body, format="json")
        assert response.status_code == 400 and field in response.json(), body
    assert api.get(f"/api/reviews/?run={run.pk}").json()["count"] == 1
    assert api.get(f"/api/reviews/?run={other.pk}").json()["count"] == 0
    assert api.get("/api/reviews/?run=x").status_code == 400

    choice = api.post("/api/preferences/", {"run_a": twin.pk, "run_b": run.pk, "choice": "a"}, format="json")
    assert choice.status_code == 201 and choice.json()["run_a"] == run.pk and choice.json()["choice"] == "b"
    different = api.post("/api/preferences/", {"run_a": run.pk, "run_b": other.pk, "choice": "a"}, format="json")
    assert different.status_code == 400 and "run_b" in different.json()
    assert api.post("/api/preferences/", {"run_a": run.pk, "run_b": twin.pk, "choice": "x"},
                    format="json").status_code == 400
    assert api.get(f"/api/preferences/?run={twin.pk}").json()["count"] == 1

    assert client.get("/api/reviews/").status_code in (401, 403)
    assert client.post("/api/reviews/", {"run": run.pk, "verdict": "good"}).status_code in (401, 403)
    viewer = api_with_perms("evaluations.view_review")
    assert viewer.get("/api/reviews/").status_code == 200
    assert viewer.post("/api/reviews/", {"run": run.pk, "verdict": "good"}, format="json").status_code == 403
    assert viewer.get("/api/preferences/").status_code == 403
    writer = api_with_perms("evaluations.add_review")
    assert writer.post("/api/reviews/", {"run": run.pk, "verdict": "good"}, format="json").status_code == 201
    assert Review.objects.filter(run=run).count() == 2  # one per reviewer


def pages_need_permissions(experiment: Experiment, client: Client, client_with_perms: Callable[..., Client]) -> None:
    pk = experiment.pk
    cell = cells_in_order(experiment)[0]
    queue, ab, summary = (reverse("experiments:review", args=[pk]), reverse("experiments:review-ab", args=[pk]),
                          reverse("experiments:reviews", args=[pk]))
    for url in (queue, ab, summary):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url
    assert client.post(queue, {"cell": cell.pk, "verdict": "good"}).status_code == 302
    reader = client_with_perms("experiments.view_experiment")
    for url in (queue, ab, summary):
        assert reader.get(url).status_code == 403, url
    assert reader.post(queue, {"cell": cell.pk, "verdict": "good"}).status_code == 403
    reviewer = client_with_perms("experiments.view_experiment", "evaluations.add_review")
    assert reviewer.get(queue).status_code == 200
    assert reviewer.get(ab).status_code == 403 and reviewer.get(summary).status_code == 403
    assert reviewer.post(queue, {"cell": cell.pk, "verdict": "good"}).status_code == 302
    assert client_with_perms("evaluations.add_review").get(queue).status_code == 403  # the experiment's too
    assert client_with_perms("experiments.view_experiment", "evaluations.add_preference").get(ab).status_code == 200
    summary_page = client_with_perms("experiments.view_experiment", "evaluations.view_review").get(summary)
    assert summary_page.status_code == 200 and '<td class="num" data-field="good">1</td>' in summary_page.content.decode()
    assert Review.objects.count() == 1


async def test_every_review_page_needs_a_login_and_the_permission(client, client_with_perms, fake_llm):
    experiment = await driven(fake_llm, rows=1)
    await sync_to_async(pages_need_permissions)(experiment, client, client_with_perms)


# --- Retention ------------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_the_prune_keeps_reviewed_and_compared_runs_unless_asked(user):
    reviewed, compared, twin, loose = (make_run(status=RunStatus.SUCCEEDED, inputs={"topic": "a"}) for _ in range(4))
    review_set(run=reviewed, reviewer=user, verdict="good")
    preference_set(run_a=compared, run_b=twin, reviewer=user, choice="tie")
    Run.objects.update(created_at=timezone.now() - datetime.timedelta(days=100))
    report = runs_prune(older_than=datetime.timedelta(days=30), reclaim=False, pause=0)
    assert report.runs == 1 and set(Run.objects.values_list("pk", flat=True)) == {reviewed.pk, compared.pk, twin.pk}
    assert not Run.objects.filter(pk=loose.pk).exists()
    report = runs_prune(older_than=datetime.timedelta(days=30), reclaim=False, pause=0, include_kept=True)
    assert report.runs == 3 and not Run.objects.exists()
    assert not Review.objects.exists() and not Preference.objects.exists()


@pytest.mark.django_db
def test_any_finished_run_is_reviewed_on_its_own_page_and_the_admin_lists_reviews(user_client, client,
                                                                                   client_with_perms, user):
    run = make_run(status=RunStatus.SUCCEEDED, inputs={"topic": "tides"}, output="The moon pulls the sea.")
    url = reverse("evaluations:run-review", args=[run.pk])
    assert client.get(url).status_code == 302
    assert client_with_perms("runs.view_run").get(url).status_code == 403
    assert client_with_perms("evaluations.add_review").get(url).status_code == 403
    page = user_client.get(url).content.decode()
    assert "The moon pulls the sea." in page and "tides" in page
    bad = user_client.post(url, {"verdict": "good", "score": "-1"})
    assert bad.status_code == 400 and "score: " in bad.content.decode() and not Review.objects.exists()
    assert user_client.post(url, {"verdict": "good", "score": "0.5", "comment": "right"}).status_code == 302
    assert user_client.post(url, {"verdict": "bad", "comment": "wrong after all"}).status_code == 302
    review = Review.objects.get()
    assert (review.verdict, review.score, review.comment) == ("bad", None, "wrong after all")
    assert 'aria-pressed="true"' in user_client.get(url).content.decode()
    listed = user_client.get("/admin/evaluations/review/")
    assert listed.status_code == 200 and 'class="field-verdict">Bad<' in listed.content.decode()
    assert user_client.get("/admin/evaluations/review/add/").status_code == 403
    assert user_client.get("/admin/evaluations/preference/").status_code == 200


def test_the_experiment_page_links_to_the_review_queue_and_shows_agreement(user_client, client_with_perms):
    from tests.experiments.conftest import make_dataset_version, make_two_releases, start_experiment

    workflow, first, _ = make_two_releases("http://127.0.0.1:9/v1")
    experiment = start_experiment(workflow, make_dataset_version(1), [first])
    page = user_client.get(f"/experiments/{experiment.pk}/").content.decode()
    assert f"/experiments/{experiment.pk}/review/" in page and 'id="review-agreement"' in page
    viewer = client_with_perms("experiments.view_experiment")
    page = viewer.get(f"/experiments/{experiment.pk}/").content.decode()
    assert 'id="review-link"' not in page and 'id="review-agreement"' not in page


def test_the_ab_shuffle_puts_each_variant_first_in_some_cases_and_is_stable() -> None:
    experiment, reviewer, other = SimpleNamespace(pk=7), SimpleNamespace(pk=3), SimpleNamespace(pk=4)
    sides = [_swapped(experiment, position, 0, reviewer) for position in range(32)]
    assert 8 < sum(sides) < 24  # both sides, roughly as often
    assert sides == [_swapped(experiment, position, 0, reviewer) for position in range(32)]
    assert sides != [_swapped(experiment, position, 0, other) for position in range(32)]  # per reviewer
