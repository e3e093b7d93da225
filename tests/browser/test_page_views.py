"""The server side of the run pages and the LLM Tester, through Django's test client (no browser).

Forms, permissions, filters and the streamed tester answer; the browser walks are in test_live_pages.py.
"""
import html
import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import AsyncClient, Client

from runs.models import Response, Run, RunStatus
from runs.services import run_start
from tests.factories import make_block, make_chain, make_endpoint, make_payload, make_workflow
from tests.fake_llm import reply_text

PASSWORD = "pw-for-tests-only"


def client_with(*perms: str) -> Client:
    user = get_user_model().objects.create_user(f"u{len(perms)}-{'-'.join(perms)}"[:150], password=PASSWORD)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def article(db):  # type: ignore[no-untyped-def]
    workflow = make_chain(make_endpoint(), name="Article")
    workflow.inputs = [{"name": "topic", "description": "What the article is about."},
                       {"name": "tone", "default": "plain", "description": "How it sounds."}]
    workflow.save()
    return workflow


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/runs/", "/run/", "/llm/tester/"])
def test_anonymous_visitors_are_sent_to_log_in(path):
    response = Client().get(path)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.django_db
def test_pages_need_their_permissions(article):
    viewer = client_with("runs.view_run")
    assert viewer.get("/runs/").status_code == 200
    assert viewer.get(f"/run/{article.pk}/").status_code == 403
    assert viewer.post(f"/run/{article.pk}/", {"topic": "x"}).status_code == 403
    assert client_with().get("/runs/").status_code == 403
    assert client_with("llm.view_endpoint").post("/llm/tester/stream/", {}).status_code == 403
    assert Run.objects.count() == 0


@pytest.mark.django_db
def test_the_run_form_has_a_field_per_declared_input_with_defaults_and_descriptions(user_client, article):
    page = html.unescape(user_client.get(f"/run/{article.pk}/").content.decode())
    assert 'name="topic"' in page and 'name="tone"' in page
    assert "What the article is about." in page and "plain</textarea>" in page


@pytest.mark.django_db
def test_a_missing_input_is_shown_next_to_its_field_and_nothing_starts(user_client, article):
    response = user_client.post(f"/run/{article.pk}/", {"topic": "", "tone": "dry"})
    assert response.status_code == 400
    assert response.context["form"].errors == {"topic": ["This field is required."]}
    assert 'id="id_topic_errors"' in response.content.decode()
    assert Run.objects.count() == 0


@pytest.mark.django_db
def test_a_valid_form_starts_a_run_and_opens_its_page(user_client, article):
    response = user_client.post(f"/run/{article.pk}/", {"topic": "tides", "tone": ""})
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert run.inputs == {"topic": "tides", "tone": ""} and run.status == RunStatus.QUEUED


@pytest.mark.django_db
def test_a_workflow_with_problems_shows_them_and_its_form_is_disabled(user_client):
    endpoint = make_endpoint()
    payload = make_payload("p", endpoint, [("user", make_block("b", "About {{ subject }}"))])
    workflow = make_workflow("broken", [("out", payload)])
    page = html.unescape(user_client.get(f"/run/{workflow.pk}/").content.decode())
    assert "'subject' is neither a workflow input nor an earlier step's output." in page
    assert "<fieldset disabled>" in page
    assert user_client.post(f"/run/{workflow.pk}/", {"topic": "x"}).status_code == 400
    assert Run.objects.count() == 0


@pytest.mark.django_db
def test_the_runs_list_filters_by_status_workflow_and_search(user_client, article):
    other = make_chain(make_endpoint(name="other"), name="Other")
    tides = run_start(workflow=article, inputs={"topic": "tides"}, user=None)
    wind = run_start(workflow=article, inputs={"topic": "wind"}, user=None)
    Run.objects.filter(pk=wind.pk).update(status=RunStatus.FAILED)
    elsewhere = run_start(workflow=other, inputs={"topic": "tides"}, user=None)
    # Search covers finished runs (runs.search): these two finish.
    Run.objects.filter(pk__in=[tides.pk, elsewhere.pk]).update(status=RunStatus.SUCCEEDED)

    def listed(query: str, **headers: str) -> set[int]:
        response = user_client.get(f"/runs/?{query}", **headers)
        return {run.pk for run in response.context["page"]}

    assert listed("") == {tides.pk, wind.pk, elsewhere.pk}
    assert listed("status=failed") == {wind.pk}
    assert listed(f"workflow={other.pk}") == {elsewhere.pk}
    assert listed("q=tides") == {tides.pk, elsewhere.pk}
    assert listed(f"q=tides&workflow={article.pk}") == {tides.pk}
    htmx = user_client.get("/runs/?status=failed", HTTP_HX_REQUEST="true")
    assert 'id="runs-table"' in htmx.content.decode() and "<html" not in htmx.content.decode()  # the table only


@pytest.mark.django_db
def test_the_run_page_shows_each_recorded_step_and_its_prompt_on_demand(user_client, article):
    run = run_start(workflow=article, inputs={"topic": "tides"}, user=None)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, next_step=1, started_at=run.created_at)
    Response.objects.create(run=run, index=0, output_key="outline", payload_name="Article-outline", status="succeeded",
                            output="An outline", prompt_tokens=7, completion_tokens=3, latency_ms=1500, ttft_ms=40,
                            messages=[{"role": "user", "content": "Write a short outline about tides."}])
    page = user_client.get(f"/runs/{run.pk}/").content.decode()
    assert "An outline" in page and "7 in · 3 out" in page and "1.50 s" in page and "40 ms" in page
    assert 'data-index="1" data-status="running"' in page  # the step being run now is shown
    prompt = user_client.get(f"/runs/{run.pk}/steps/0/prompt/").content.decode()
    assert "Write a short outline about tides." in prompt
    assert "shown once the step has finished" in user_client.get(f"/runs/{run.pk}/steps/1/prompt/").content.decode()


@pytest.mark.django_db
def test_cancel_stops_a_queued_run_and_rerun_starts_a_new_one_from_it(user_client, article):
    run = run_start(workflow=article, inputs={"topic": "tides"}, user=None)
    assert user_client.post(f"/runs/{run.pk}/cancel/")["Location"] == f"/runs/{run.pk}/"
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    response = user_client.post(f"/runs/{run.pk}/rerun/")
    replay = Run.objects.exclude(pk=run.pk).get()
    assert response["Location"] == f"/runs/{replay.pk}/"
    assert replay.source_run_id == run.pk and replay.inputs == run.inputs
    assert user_client.get(f"/runs/{run.pk}/cancel/").status_code == 405


@pytest.mark.django_db
def test_the_tester_refuses_an_empty_prompt_naming_the_field(user_client):
    endpoint = make_endpoint()
    response = user_client.post("/llm/tester/stream/", {"endpoint": endpoint.pk, "model": "m", "prompt": ""})
    assert response.status_code == 400
    assert response.json()["errors"]["prompt"][0]["message"] == "This field is required."


def _events(body: bytes) -> list[tuple[str, dict]]:
    events = []
    for block in body.decode().strip().split("\n\n"):
        kind, data = block.split("\n")
        events.append((kind.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


@pytest.mark.django_db(transaction=True)
async def test_the_tester_streams_the_answer_as_server_sent_events(fake_llm, user):
    from asgiref.sync import sync_to_async

    endpoint = await sync_to_async(make_endpoint)(fake_llm.base_url)
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.post("/llm/tester/stream/", {"endpoint": endpoint.pk, "model": "gpt-4o-mini",
                                                         "prompt": "Hello there", "max_tokens": "5"})
    assert response["Content-Type"] == "text/event-stream"
    events = _events(b"".join([chunk async for chunk in response.streaming_content]))
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"delta"}
    assert "".join(data["text"] for kind, data in events if kind == "delta") == reply_text("Hello there", 5)
    done = events[-1][1]
    assert done["completion_tokens"] == 5 and done["finish_reason"] == "length" and done["ttft_ms"] is not None


@pytest.mark.django_db(transaction=True)
async def test_the_tester_reports_an_unreachable_endpoint_as_an_error_event(user):
    from asgiref.sync import sync_to_async

    endpoint = await sync_to_async(make_endpoint)("http://127.0.0.1:9/v1", max_retries=0)
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.post("/llm/tester/stream/", {"endpoint": endpoint.pk, "model": "m", "prompt": "Hi"})
    [(kind, data)] = _events(b"".join([chunk async for chunk in response.streaming_content]))
    assert kind == "error" and data["kind"] in ("refused", "connection") and data["message"]


@pytest.mark.django_db(transaction=True)
async def test_the_connectivity_test_shows_every_check_with_its_result(fake_llm, user):
    from asgiref.sync import sync_to_async

    endpoint = await sync_to_async(make_endpoint)(fake_llm.base_url)
    client = AsyncClient()
    await client.aforce_login(user)
    page = (await client.post("/llm/tester/connectivity/", {"endpoint": endpoint.pk})).content.decode()
    for check in ["reachable", "model", "completion", "streaming", "stream_usage", "structured_output"]:
        assert f'data-check="{check}"' in page
    assert page.count('data-status="pass"') == 7  # six checks and the summary
    models = await client.get(f"/llm/tester/endpoints/{endpoint.pk}/models/")
    assert "gpt-4o-mini" in models.json()["models"] and models.json()["error"] is None
