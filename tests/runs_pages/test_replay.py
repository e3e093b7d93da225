"""Replay from a step: the form prefilled from the source run, the replay it starts, and its errors."""
import html

import pytest
from django.test import Client

from runs.models import Response, ResponseStatus, Run, RunStatus
from tests.runs_pages.conftest import client_with, finished_run

OUTPUTS = ["An outline", "A paragraph", "A summary"]


@pytest.mark.django_db
def test_every_step_of_a_finished_run_offers_replay_from_here(user_client, article):
    run = finished_run(article, {"topic": "tides"}, OUTPUTS)
    page = user_client.get(f"/runs/{run.pk}/").content.decode()
    for index in range(3):
        assert f'href="/runs/{run.pk}/replay/?from_step={index}">Replay from here</a>' in page
    assert " hidden>Replay from here</a>" not in page.split('id="step-template"')[0]
    # Only people who may start runs see it.
    viewer_page = client_with("runs.view_run").get(f"/runs/{run.pk}/").content.decode()
    assert viewer_page.count("Replay from here</a>") == viewer_page.count(" hidden>Replay from here</a>") == 4


@pytest.mark.django_db
def test_the_replay_form_is_prefilled_with_the_source_inputs_and_the_chosen_step(user_client, article):
    run = finished_run(article, {"topic": "tides", "tone": "dry"}, OUTPUTS)
    response = user_client.get(f"/runs/{run.pk}/replay/?from_step=1")
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert "\ntides</textarea>" in page and "\ndry</textarea>" in page
    assert '<option value="1" selected>Step 2 · paragraph</option>' in page
    assert "What the article is about." in page


@pytest.mark.django_db
def test_replaying_from_step_two_copies_step_one_and_runs_the_rest_with_the_edited_input(user_client, article):
    source = finished_run(article, {"topic": "tides", "tone": "plain"}, OUTPUTS)
    response = user_client.post(f"/runs/{source.pk}/replay/", {"from_step": "1", "topic": "winds", "tone": "plain"})
    replay = Run.objects.exclude(pk=source.pk).get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{replay.pk}/"
    assert replay.source_run_id == source.pk and replay.replay_from_step == 1
    assert replay.inputs == {"topic": "winds", "tone": "plain"} and replay.status == RunStatus.QUEUED
    [copied] = replay.responses.all()
    assert copied.index == 0 and copied.status == ResponseStatus.COPIED and copied.output == "An outline"
    page = user_client.get(response["Location"]).content.decode()
    assert f'href="/runs/compare/?a={source.pk}&amp;b={replay.pk}">Compare with source</a>' in page
    assert f"Replay of run #{source.pk} from step 2 started" in html.unescape(page)


@pytest.mark.django_db
def test_a_step_that_cannot_be_replayed_is_explained_next_to_the_step_field(user_client, article):
    # The source failed at step 2: step 3 has no finished step before it to copy.
    source = finished_run(article, {"topic": "tides"}, OUTPUTS[:2], status=RunStatus.FAILED)
    Response.objects.filter(run=source, index=1).update(status=ResponseStatus.FAILED, error="boom")
    response = user_client.post(f"/runs/{source.pk}/replay/", {"from_step": "2", "topic": "tides", "tone": ""})
    assert response.status_code == 400
    assert response.context["form"].errors == {
        "from_step": ["The source run has no finished response for every step before step 3."]}
    assert 'id="id_from_step_errors"' in response.content.decode()
    assert Run.objects.count() == 1


@pytest.mark.django_db
def test_a_missing_input_or_an_unknown_step_is_shown_next_to_its_field(user_client, article):
    source = finished_run(article, {"topic": "tides"}, OUTPUTS)
    response = user_client.post(f"/runs/{source.pk}/replay/", {"from_step": "7", "topic": "", "tone": ""})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors["topic"] == ["This field is required."]
    assert errors["from_step"][0].startswith("Select a valid choice.")
    assert Run.objects.count() == 1


@pytest.mark.django_db
def test_a_run_whose_workflow_was_deleted_cannot_be_replayed(user_client, article):
    source = finished_run(article, {"topic": "tides"}, OUTPUTS)
    article.delete()
    for response in (user_client.get(f"/runs/{source.pk}/replay/"),
                     user_client.post(f"/runs/{source.pk}/replay/", {"from_step": "0", "topic": "x"})):
        assert response.status_code == 400
        assert "workflow was deleted" in response.content.decode()
    assert Run.objects.count() == 1


@pytest.mark.django_db
def test_replaying_needs_the_add_permission_and_a_csrf_token(article):
    source = finished_run(article, {"topic": "tides"}, OUTPUTS)
    url = f"/runs/{source.pk}/replay/"
    form = {"from_step": "1", "topic": "winds", "tone": ""}
    assert Client().post(url, form).status_code == 302  # to the login page
    viewer = client_with("runs.view_run")
    assert viewer.get(url).status_code == 403 and viewer.post(url, form).status_code == 403
    strict = client_with("runs.view_run", "runs.add_run", enforce_csrf_checks=True)
    assert strict.post(url, form).status_code == 403
    assert Run.objects.count() == 1
    page = strict.get(url)
    token = page.cookies["csrftoken"].value
    assert strict.post(url, {**form, "csrfmiddlewaretoken": token}).status_code == 302
    assert Run.objects.count() == 2
