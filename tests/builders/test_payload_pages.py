import json

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from payloads.models import Payload
from tests.factories import make_endpoint

pytestmark = pytest.mark.django_db


def _form(chain, **overrides):
    endpoint = chain["endpoint"]
    outline_block, system_block, _ = chain["blocks"]
    data = {"name": "fresh", "description": "", "endpoint": str(endpoint.pk), "model": "", "temperature": "0.5",
            "max_tokens": "50", "structured_retries": "2", "stream": "on", "extra_params": "{}",
            "block": [str(system_block.pk), str(outline_block.pk)], "role": ["system", "user"]}
    data.update(overrides)
    return data


def test_list_shows_payloads_with_blocks_variables_and_workflows(user_client, chain):
    html = user_client.get("/payloads/").content.decode()
    assert "house-style, outline-prompt" in html and '<code class="chip">audience</code>' in html
    assert "article" in html


def test_create_a_payload_with_ordered_blocks_and_roles(user_client, chain):
    response = user_client.post("/payloads/new/", _form(chain))
    payload = Payload.objects.get(name="fresh")
    assert response.status_code == 302 and response["Location"] == f"/payloads/{payload.pk}/"
    assert [(pb.block.name, pb.role) for pb in payload.payload_blocks.all()] == [
        ("house-style", "system"), ("outline-prompt", "user")]
    assert payload.temperature == 0.5 and payload.max_tokens == 50 and payload.stream is True


def test_edit_reorders_blocks_in_page_order(user_client, chain):
    payload = chain["payloads"][0]
    outline_block, system_block, _ = chain["blocks"]
    data = _form(chain, name="outline", block=[str(outline_block.pk), str(system_block.pk)], role=["user", "system"])
    assert user_client.post(f"/payloads/{payload.pk}/", data).status_code == 302
    assert [pb.block.name for pb in payload.payload_blocks.all()] == ["outline-prompt", "house-style"]


def test_form_errors_are_shown_next_to_their_field_and_the_blocks_survive(user_client, chain):
    response = user_client.post("/payloads/new/", _form(chain, temperature="5", extra_params='{"model": "x"}'))
    html = response.content.decode()
    assert response.status_code == 400
    assert 'id="id_temperature_errors"' in html and 'id="id_extra_params_errors"' in html
    assert html.count("data-block-row>") >= 2  # the rows the person built are still there
    assert not Payload.objects.filter(name="fresh").exists()


def test_a_block_row_that_names_no_block_is_reported_at_the_blocks(user_client, chain):
    response = user_client.post("/payloads/new/", _form(chain, block=["999999"], role=["user"]))
    assert response.status_code == 400 and "Block 1: no such block." in response.content.decode()


def test_preview_renders_unsaved_blocks_with_sample_values_and_counts_tokens(user_client, chain):
    data = _form(chain, **{"sample-topic": "owls", "sample-audience": "kids"})
    html = user_client.post("/payloads/preview/", data).content.decode()
    assert "You are terse." in html and "Outline owls for kids." in html
    count = int(html.split('id="token-count">')[1].split("<")[0])
    longer = user_client.post("/payloads/preview/", {**data, "sample-topic": "owls " * 50}).content.decode()
    assert int(longer.split('id="token-count">')[1].split("<")[0]) > count
    assert 'id="samples" hx-swap-oob' not in html  # same names: the sample fields are left alone


def test_preview_shows_missing_samples_as_placeholders_and_redraws_sample_fields(user_client, chain):
    html = user_client.post("/payloads/preview/", _form(chain)).content.decode()
    assert "Outline {{ topic }} for {{ audience }}." in html
    assert 'id="samples" hx-swap-oob="true"' in html and 'name="sample-topic"' in html


def test_a_viewer_cannot_save_or_try(client_with_perms, chain):
    viewer = client_with_perms("payloads.view_payload")
    assert viewer.get(f"/payloads/{chain['payloads'][0].pk}/").status_code == 200
    assert viewer.post("/payloads/new/", _form(chain)).status_code == 403
    assert viewer.post("/payloads/try/", _form(chain)).status_code == 403
    assert viewer.post("/payloads/preview/", _form(chain)).status_code == 200  # reading only


def test_payload_changes_need_the_csrf_token(csrf_client, chain):
    assert csrf_client.post("/payloads/new/", _form(chain)).status_code == 403
    assert csrf_client.post("/payloads/try/", _form(chain)).status_code == 403
    assert not Payload.objects.filter(name="fresh").exists()


def _events(body: bytes) -> list[tuple[str, dict]]:
    events = []
    for chunk in body.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


@pytest.mark.django_db(transaction=True)
async def test_try_it_streams_the_answer_from_the_endpoint(chain, fake_llm, user):
    endpoint = await sync_to_async(make_endpoint)(fake_llm.base_url, name="fake-server")
    client = AsyncClient()
    await client.aforce_login(user)
    data = _form(chain, endpoint=str(endpoint.pk), **{"sample-topic": "owls", "sample-audience": "kids"})
    response = await client.post("/payloads/try/", data)
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    events = _events(b"".join([chunk async for chunk in response.streaming_content]))
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"delta"}
    assert "".join(d["text"] for k, d in events if k == "delta") == events[-1][1]["text"] != ""
    stats = await sync_to_async(fake_llm.stats)()
    assert stats["chat_requests"] == 1 and "Outline owls for kids." in json.dumps(stats["recent"])


def test_try_it_with_a_missing_sample_value_names_it_without_calling(user_client, chain, fake_llm):
    endpoint = make_endpoint(fake_llm.base_url, name="fake-server")
    response = user_client.post("/payloads/try/", _form(chain, endpoint=str(endpoint.pk)))
    assert response.status_code == 400
    assert "missing variables: audience, topic" in response.json()["errors"]["samples"][0]["message"]
    assert fake_llm.stats()["chat_requests"] == 0


def test_preview_marks_a_blank_sample_value_missing_instead_of_rendering_it_empty(user_client, chain):
    html = user_client.post("/payloads/preview/", _form(chain, **{"sample-topic": "  ", "sample-audience": "kids"}))
    html = html.content.decode()
    assert "Outline {{ topic }} for kids." in html
    assert 'data-missing>No sample value for: <code class="chip">topic</code>' in html


def test_try_it_refuses_a_blank_sample_value_as_missing_without_calling(user_client, chain, fake_llm):
    endpoint = make_endpoint(fake_llm.base_url, name="fake-server")
    data = _form(chain, endpoint=str(endpoint.pk), **{"sample-topic": "", "sample-audience": "kids"})
    response = user_client.post("/payloads/try/", data)
    assert response.status_code == 400
    assert response.json()["errors"]["samples"][0]["message"] == "missing variables: topic"
    assert fake_llm.stats()["chat_requests"] == 0
