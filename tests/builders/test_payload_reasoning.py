"""The payload builder's "Pass reasoning to later steps" checkbox: rendered like the other checkbox, kept on save."""
import re

import pytest

from payloads.models import Payload
from tests.builders.test_payload_pages import _form

pytestmark = pytest.mark.django_db


def test_the_pass_reasoning_checkbox_sits_under_more_with_its_label_and_help(user_client, chain):
    page = user_client.get(f"/payloads/{chain['payloads'][0].pk}/").content.decode()
    more = page[page.index("<summary>More: stop, structured output, reasoning, extra parameters</summary>"):]
    more = more[:more.index("</details>")]
    field = re.search(r'<div class="field checkbox-field">\s*<label><input type="checkbox" name="pass_reasoning"[^>]*>'
                      r" Pass reasoning to later steps</label>\s*<span class=\"help\">([^<]*)</span>", more)
    assert field, more
    assert "in &lt;think&gt; tags before the answer" in field.group(1)


def test_saving_with_pass_reasoning_on_keeps_it_and_shows_it_checked(user_client, chain):
    assert user_client.post("/payloads/new/", _form(chain, pass_reasoning="on")).status_code == 302
    payload = Payload.objects.get(name="fresh")
    assert payload.pass_reasoning is True
    page = user_client.get(f"/payloads/{payload.pk}/").content.decode()
    assert re.search(r'<input type="checkbox" name="pass_reasoning"[^>]*checked', page)
    assert user_client.post(f"/payloads/{payload.pk}/", _form(chain)).status_code == 302
    payload.refresh_from_db()
    assert payload.pass_reasoning is False
