"""The LLM Tester's connectivity result (templates/llm/_checks.html), over real HTTP to the fake server:
the Structured output check, marked required when a payload needs it, and what the server accepts."""
import html
import re

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from tests.factories import make_endpoint, make_payload

pytestmark = pytest.mark.django_db(transaction=True)


async def checks_page(user, endpoint) -> str:  # type: ignore[no-untyped-def]
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.post("/llm/tester/connectivity/", {"endpoint": endpoint.pk})
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def accepts_of(page: str) -> dict[str, tuple[str, bool]]:
    """label -> (value as shown, marked learned) of "What the server accepts"."""
    section = page[page.index('id="checks-accepts"'):page.index("</section>")]
    rows = re.findall(r"<dt>(.*?)</dt>\s*<dd ([^>]*)>(.*?)</dd>", section, re.S)
    return {label: (re.sub(r"<[^>]+>", "", value).replace("learned now", "").strip(), 'data-learned="true"' in attrs)
            for label, attrs, value in rows}


def structured_row(page: str) -> str:
    return re.search(r'<tr data-check="structured_output">.*?</tr>', page, re.S).group(0)


async def test_a_healthy_endpoint_shows_the_structured_output_check_and_what_the_server_accepts(fake_llm, user):
    endpoint = await sync_to_async(make_endpoint)(fake_llm.base_url)
    page = await checks_page(user, endpoint)

    row = structured_row(page)
    assert "<td>Structured output</td>" in row and 'data-status="pass"' in row
    assert "json_schema: the server enforces the schema; the answer fits the schema" in row
    assert "required" not in row  # no payload on this endpoint asks for a schema
    assert "What the server accepts" in page
    assert accepts_of(page) == {
        "Structured output": ("json_schema: the server enforces the schema", False),
        "Stream options sent": ("yes", False),
        "Usage in streams": ("yes", False),
        "Token limit sent as": ("max_tokens", False),
        "Temperature allowed": ("yes", False),
        "Reasoning field": ("none seen", False),
    }
    assert "Nothing new" in page


async def test_what_the_test_learned_is_marked_and_the_check_is_required_once_a_payload_uses_a_schema(fake_llm, user):
    endpoint = await sync_to_async(make_endpoint)(fake_llm.base_url)
    await sync_to_async(make_payload)("structured", endpoint, [], json_schema={"type": "object"})
    # Plain and streamed probes answer; the structured one is refused in the json_schema dialect.
    fake_llm.fail_next({}, {}, {"status": 400, "message": "json_schema is not supported, use json_object"})
    page = await checks_page(user, endpoint)

    row = structured_row(page)
    assert re.search(r'<td>Structured output <span class="badge" data-status="required"[^>]*>required</span></td>', row)
    assert "<td>json_object with schema: grammar-constrained;" in row  # whether the fake's JSON fits is not ours here
    accepts = accepts_of(page)
    assert accepts["Structured output"] == ("json_object with schema: grammar-constrained", True)
    assert [label for label, (_, learned) in accepts.items() if learned] == ["Structured output"]
    assert "what this test found out" in page


async def test_an_unreachable_endpoint_shows_no_guess_of_what_it_accepts(user):
    endpoint = await sync_to_async(make_endpoint)("http://127.0.0.1:9/v1", max_retries=0)
    page = await checks_page(user, endpoint)
    assert 'data-status="skipped"' in structured_row(page)
    assert "What the server accepts" not in page
