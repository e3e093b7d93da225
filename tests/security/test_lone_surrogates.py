"""A lone surrogate ("\\ud800" in JSON) can't be encoded as UTF-8: every route that takes text answers
400 naming where it is, and writes nothing, so the run list and pages keep rendering for everyone."""
import io
import json

import pytest
from django.core.management import CommandError, call_command

from blocks.models import Block
from llm.models import Endpoint
from payloads.models import Payload
from runs.models import Run
from tests.admin.test_builders import inline_post_data
from tests.factories import make_chain, make_endpoint
from workflows.models import Workflow
from workflows.portability import workflow_export

pytestmark = pytest.mark.django_db

LONE = "\ud800"


def _json(data: object) -> str:
    # json.dumps escapes the surrogate as \ud800: the bytes on the wire are valid, the text is not.
    return json.dumps(data)


def _pages_still_render(client, workflow) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/runs/").status_code == 200
    assert client.get("/runs/").status_code == 200
    for run in Run.objects.all():
        assert client.get(f"/runs/{run.pk}/").status_code == 200
        assert client.get(f"/runs/{run.pk}/export.json").status_code == 200
        assert client.get(f"/admin/runs/run/{run.pk}/change/").status_code == 200


@pytest.mark.parametrize("inputs", [{"topic": LONE}, {"topic": f"ok {LONE} ok"}])
def test_run_inputs_with_a_lone_surrogate_are_a_400_naming_the_input(user_client, inputs):
    workflow = make_chain(make_endpoint())
    response = user_client.post(f"/api/workflows/{workflow.pk}/runs/", _json({"inputs": inputs}),
                                content_type="application/json")
    assert response.status_code == 400
    assert "inputs.topic" in response.json() and "surrogate" in str(response.json())
    assert Run.objects.count() == 0
    _pages_still_render(user_client, workflow)


def test_a_surrogate_in_a_key_is_refused_too(user_client):
    workflow = make_chain(make_endpoint())
    response = user_client.post(f"/api/workflows/{workflow.pk}/runs/", _json({"inputs": {LONE: "x"}}),
                                content_type="application/json")
    assert response.status_code == 400 and "inputs.\\ud800" in response.json()
    assert Run.objects.count() == 0


def test_api_rerun_payload_stop_and_endpoint_headers_refuse_surrogates(user_client):
    workflow = make_chain(make_endpoint())
    source = user_client.post(f"/api/workflows/{workflow.pk}/runs/", _json({"inputs": {"topic": "owls"}}),
                              content_type="application/json").json()["id"]
    payload, endpoint = Payload.objects.first(), Endpoint.objects.first()
    attempts = [
        ("post", f"/api/runs/{source}/rerun/", {"from_step": 0, "inputs": {"topic": LONE}}, "inputs.topic"),
        ("patch", f"/api/payloads/{payload.pk}/", {"stop": ["\n", LONE]}, "stop[1]"),
        ("patch", f"/api/endpoints/{endpoint.pk}/", {"extra_headers": {"X-Team": LONE}}, "extra_headers.X-Team"),
        ("post", "/api/blocks/", {"name": "b", "content": f"Hi {LONE}"}, "content"),
    ]
    for method, url, body, field in attempts:
        response = getattr(user_client, method)(url, _json(body), content_type="application/json")
        assert response.status_code == 400 and field in response.json(), (url, response.content)
    assert Run.objects.count() == 1 and not Block.objects.filter(name="b").exists()
    payload.refresh_from_db()
    endpoint.refresh_from_db()
    assert payload.stop in (None, []) and endpoint.extra_headers in (None, {})


def test_payload_page_refuses_a_surrogate_in_its_json_fields(user_client):
    workflow = make_chain(make_endpoint())
    payload = Payload.objects.get(name=workflow.steps.first().payload.name)
    uses = list(payload.payload_blocks.all())
    data = {"name": payload.name, "description": "", "endpoint": str(payload.endpoint_id), "model": "",
            "max_tokens": "50", "structured_retries": "2", "extra_params": "{}", "stop": '["\\ud800"]',
            "block": [str(u.block_id) for u in uses], "role": [u.role for u in uses]}
    response = user_client.post(f"/payloads/{payload.pk}/", data)
    assert response.status_code == 400 and "stop[0]" in response.content.decode()
    payload.refresh_from_db()
    assert not payload.stop


def test_admin_forms_refuse_surrogates(user_client):
    # The endpoint admin edits headers as "Name: value" lines now; the payload admin still takes JSON.
    workflow = make_chain(make_endpoint())
    payload = Payload.objects.get(name=workflow.steps.first().payload.name)
    uses = list(payload.payload_blocks.order_by("position"))
    data = {"name": payload.name, "description": "", "endpoint": payload.endpoint_id, "model": "",
            "structured_retries": 2, "extra_params": "{}", "stop": '["\\udfff"]', "json_schema": "",
            **inline_post_data("payload_blocks", [
                {"id": u.pk, "payload": payload.pk, "block": u.block_id, "role": u.role, "position": u.position}
                for u in uses], initial=len(uses))}
    response = user_client.post(f"/admin/payloads/payload/{payload.pk}/change/", data)
    assert response.status_code == 200 and "stop[0]" in response.content.decode()
    payload.refresh_from_db()
    assert not payload.stop


def _export_with_surrogate() -> dict:
    workflow = make_chain(make_endpoint())
    document = workflow_export(workflow)
    document["blocks"][0]["content"] += LONE
    document["workflow"]["name"] = "imported"
    return document


def test_workflow_import_refuses_surrogates_on_the_api_the_page_and_the_command(user_client, tmp_path):
    document = _export_with_surrogate()
    blocks, workflows = Block.objects.count(), Workflow.objects.count()
    api = user_client.post("/api/workflows/import/", _json({"document": document}), content_type="application/json")
    assert api.status_code == 400 and "document.blocks[0].content" in api.json()
    page = user_client.post("/workflows/import/", {"file": io.BytesIO(_json(document).encode())})
    assert page.status_code == 400 and "blocks[0].content" in page.content.decode()
    path = tmp_path / "export.json"
    path.write_text(_json(document))
    with pytest.raises(CommandError, match=r"blocks\[0\]\.content"):
        call_command("import_workflow", str(path))
    assert (Block.objects.count(), Workflow.objects.count()) == (blocks, workflows)
