"""Small admin defects: the "No problems" text's contrast, the Stop field's `null`, one streaming default."""
import html
import re
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings
from django.urls import reverse

from payloads.models import Payload
from tests.admin.test_builders import inline_post_data

pytestmark = pytest.mark.django_db

ADMIN_CSS = Path(django.__file__).parent / "contrib" / "admin" / "static" / "admin" / "css"


def css_rule(css: str, selector: str) -> dict[str, str]:
    """The declarations of the first rule whose selector list is exactly `selector`."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
    match = re.search(r"(?:^|[}\s])" + re.escape(selector) + r"\s*\{([^}]*)\}", css)
    assert match, f"no rule for {selector}"
    pairs = (d.split(":", 1) for d in match.group(1).split(";") if ":" in d)
    return {name.strip(): value.strip() for name, value in pairs}


def theme_variables(theme: str) -> dict[str, str]:
    """Django admin's CSS variables in its light theme, or its dark theme on top of them."""
    names = css_rule((ADMIN_CSS / "base.css").read_text(), ":root")
    if theme == "dark":
        names |= css_rule((ADMIN_CSS / "dark_mode.css").read_text(), 'html[data-theme="dark"]')
    return names


def resolve(value: str, variables: dict[str, str]) -> str:
    while match := re.fullmatch(r"var\((--[\w-]+)(?:,\s*(.+))?\)", value):
        value = variables.get(match.group(1)) or match.group(2)
    return value


def luminance(color: str) -> float:
    hex_digits = color.lstrip("#")
    if len(hex_digits) == 3:
        hex_digits = "".join(c * 2 for c in hex_digits)
    channels = [int(hex_digits[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    lighter, darker = sorted([luminance(foreground), luminance(background)], reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_no_problems_text_meets_wcag_aa_contrast(admin_client, demo, theme):
    page = admin_client.get(reverse("admin:workflows_workflow_change", args=[demo.workflow.pk])).content.decode()
    assert '<p class="ae-ok">No problems' in page and "admin-extra/admin-extra.css" in page
    rule = css_rule((Path(settings.BASE_DIR) / "static" / "admin-extra" / "admin-extra.css").read_text(), ".ae-ok")
    variables = theme_variables(theme)
    foreground = resolve(rule["color"], variables)
    background = resolve(rule.get("background") or rule.get("background-color") or "var(--body-bg)", variables)
    assert contrast(foreground, background) >= 4.5, (theme, foreground, background)


def textarea_value(page: str, name: str) -> str:
    match = re.search(rf'<textarea[^>]*name="{name}"[^>]*>(.*?)</textarea>', page, re.DOTALL)
    assert match, f"no textarea {name}"
    return html.unescape(match.group(1)).strip()


def payload_change_data(payload: Payload, **fields: Any) -> dict[str, Any]:
    rows = [{"id": pb.pk, "payload": payload.pk, "block": pb.block_id, "role": pb.role, "position": pb.position}
            for pb in payload.payload_blocks.order_by("position")]
    return {"name": payload.name, "description": "", "endpoint": payload.endpoint_id, "model": "",
            "structured_retries": 2, "extra_params": "{}", "json_schema": "", **fields,
            **inline_post_data("payload_blocks", rows, initial=len(rows))}


def test_an_unset_stop_shows_an_empty_field_and_saving_it_empty_stores_the_default(admin_client, demo):
    url = reverse("admin:payloads_payload_change", args=[demo.summary.pk])
    page = admin_client.get(url).content.decode()
    assert textarea_value(page, "stop") == "" and textarea_value(page, "json_schema") == ""
    assert textarea_value(admin_client.get(reverse("admin:payloads_payload_add")).content.decode(), "stop") == ""

    Payload.objects.filter(pk=demo.summary.pk).update(stop=["END"])
    assert textarea_value(admin_client.get(url).content.decode(), "stop") == '["END"]'
    response = admin_client.post(url, payload_change_data(demo.summary, stop=""))
    assert response.status_code == 302, response.context["adminform"].form.errors
    demo.summary.refresh_from_db()
    assert demo.summary.stop is Payload._meta.get_field("stop").get_default()


def test_the_builder_page_shows_an_empty_stop_field_too(admin_client, demo):
    assert textarea_value(admin_client.get(reverse("payload-new")).content.decode(), "stop") == ""


def checkbox_checked(page: str, name: str) -> bool:
    match = re.search(rf'<input[^>]*type="checkbox"[^>]*name="{name}"[^>]*>|<input[^>]*name="{name}"[^>]*type="checkbox"[^>]*>',
                      page)
    assert match, f"no checkbox {name}"
    return " checked" in match.group(0)


def test_a_new_payload_streams_by_the_models_default_in_admin_builder_and_api(client, user, api, demo):
    client.force_login(user)  # `api`'s superuser; admin_client would make a second "admin"
    admin_client = client
    default = Payload._meta.get_field("stream").get_default()
    assert checkbox_checked(admin_client.get(reverse("admin:payloads_payload_add")).content.decode(), "stream") is default
    assert checkbox_checked(admin_client.get(reverse("payload-new")).content.decode(), "stream") is default
    response = api.post("/api/payloads/", {"name": "defaults", "endpoint": demo.endpoint.pk, "blocks": []}, format="json")
    assert response.status_code == 201, response.data
    assert response.data["stream"] is default and Payload.objects.get(name="defaults").stream is default
