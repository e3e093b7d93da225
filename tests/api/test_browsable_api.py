"""The browsable API at /api/: a logged-in person creates each resource from its page, as a browser does
(session cookie and CSRF token), and the root links to the API, not to the HTML pages."""
import html
import json
import re

import pytest
from django.test import Client

from blocks.models import Block
from payloads.models import Payload
from runs.models import RunStatus
from tests.factories import make_run, make_workflow
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

RAW_CONTENT = re.compile(r'<textarea name="_content"[^>]*>(.*?)</textarea>', re.S)
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture
def browser_client(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def api_page(client: Client, path: str) -> str:
    response = client.get(path, HTTP_ACCEPT="text/html")
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def raw_form_example(page: str) -> dict:
    """What the page's raw JSON form starts with (the first one: POST)."""
    return json.loads(html.unescape(RAW_CONTENT.search(page).group(1)))


def post_raw_form(client: Client, path: str, body: dict):  # type: ignore[no-untyped-def]
    """As DRF's ajax-form.js submits the raw form: JSON with the CSRF cookie's token in the header."""
    return client.post(path, json.dumps(body), content_type="application/json",
                       HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value, HTTP_ACCEPT="application/json")


def test_the_html_form_creates_a_block_with_its_csrf_token_and_only_with_it(browser_client, api):
    page = api_page(browser_client, "/api/blocks/")
    assert 'href="#post-object-form"' in page  # blocks have only plain fields: the HTML form stays
    fields = {"name": "greeting", "description": "", "content": "Hello {{ name }}."}
    assert browser_client.post("/api/blocks/", fields).status_code == 403  # no token: CSRF still refuses

    token = CSRF_INPUT.search(page).group(1)
    response = browser_client.post("/api/blocks/", {"csrfmiddlewaretoken": token, **fields},
                                   HTTP_ACCEPT="application/json")
    assert response.status_code == 201, response.content
    assert Block.objects.get(name="greeting").content == "Hello {{ name }}."
    # Only a form's token is let through: in JSON the key is still an unknown field.
    response = api.post("/api/blocks/", {"name": "x", "content": "y", "csrfmiddlewaretoken": "z"}, format="json")
    assert response.status_code == 400 and response.json() == {"csrfmiddlewaretoken": ["Unknown field."]}


def test_payloads_and_workflows_offer_the_raw_json_form_with_an_example_that_creates_them(
        browser_client, outline_payload):
    payloads_page = api_page(browser_client, "/api/payloads/")
    assert 'href="#post-object-form"' not in payloads_page  # no HTML form that cannot post blocks
    example = raw_form_example(payloads_page)
    assert [item["block"] for item in example["blocks"]] == list(Block.objects.order_by("pk").values_list("pk", flat=True))
    response = post_raw_form(browser_client, "/api/payloads/", example)
    assert response.status_code == 201, response.content
    assert len(Payload.objects.get(name="new-payload").payload_blocks.all()) == 2

    workflows_page = api_page(browser_client, "/api/workflows/")
    assert 'href="#post-object-form"' not in workflows_page
    response = post_raw_form(browser_client, "/api/workflows/", raw_form_example(workflows_page))
    assert response.status_code == 201, response.content
    workflow = Workflow.objects.get(name="new-workflow")
    assert workflow.steps.count() == 2 and workflow.input_names == ["topic"]


def test_the_api_root_links_runs_to_the_api(api):
    root = api.get("/api/").json()
    assert root["runs"] == "http://testserver/api/runs/"
    assert all("/api/" in url for url in root.values())


def test_a_workflows_runs_page_lists_its_runs_and_starts_one_from_its_form(browser_client, outline_payload):
    workflow = make_workflow("article", [("outline", outline_payload)],
                             inputs=[{"name": "topic", "default": "tides"}])
    other = make_workflow("other", [("outline", outline_payload)])
    mine = [make_run(workflow=workflow, workflow_name=workflow.name, status=RunStatus.SUCCEEDED).pk
            for _ in range(3)]
    make_run(workflow=other, workflow_name=other.name)

    listed = browser_client.get(f"/api/workflows/{workflow.pk}/runs/?page_size=2", HTTP_ACCEPT="application/json")
    assert listed.status_code == 200
    assert "count" not in listed.json() and listed.json()["next"]  # keyset pages: nothing counted
    assert [run["id"] for run in listed.json()["results"]] == mine[::-1][:2]

    page = api_page(browser_client, f"/api/workflows/{workflow.pk}/runs/")
    example = raw_form_example(page)
    assert example == {"inputs": {"topic": "tides"}}
    started = post_raw_form(browser_client, f"/api/workflows/{workflow.pk}/runs/", example)
    assert started.status_code == 201, started.content
    assert started.json()["inputs"] == {"topic": "tides"} and started.json()["workflow"] == workflow.pk


def test_an_unknown_workflows_runs_are_a_404(api):
    assert api.get("/api/workflows/999/runs/").status_code == 404
