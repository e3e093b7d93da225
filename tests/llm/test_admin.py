"""The endpoint admin: the key is write-only there too; the connectivity test reports each check."""
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from llm.models import Endpoint
from tests.factories import make_endpoint
from tests.fake_llm import FakeLLM
from tests.llm.conftest import PLANTED_KEY

pytestmark = pytest.mark.django_db

FORM = {"name": "local", "base_url": "http://127.0.0.1:8001/v1", "default_model": "gpt-4o-mini", "enabled": "on",
        "timeout_seconds": "60", "max_retries": "3", "max_concurrency": "64"}


def test_the_changelist_shows_whether_a_key_is_set_never_the_key(admin_client: Any) -> None:
    make_endpoint(name="with-key", api_key=PLANTED_KEY)
    make_endpoint(name="without-key", api_key="")
    page = admin_client.get(reverse("admin:llm_endpoint_changelist")).content.decode()
    assert "with-key" in page and "without-key" in page
    assert ">set<" in page and ">not set<" in page
    assert PLANTED_KEY not in page
    assert admin_client.get(reverse("admin:llm_endpoint_changelist") + "?q=with&enabled__exact=1&is_mock__exact=0").status_code == 200


def test_the_change_form_never_renders_the_stored_key(admin_client: Any) -> None:
    endpoint = make_endpoint(api_key=PLANTED_KEY)
    page = admin_client.get(reverse("admin:llm_endpoint_change", args=[endpoint.pk])).content.decode()
    assert 'type="password"' in page
    assert PLANTED_KEY not in page
    assert endpoint.api_key_encrypted not in page
    assert "set" in page


def test_adding_an_endpoint_stores_the_key(admin_client: Any) -> None:
    response = admin_client.post(reverse("admin:llm_endpoint_add"), {**FORM, "api_key": PLANTED_KEY})
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Endpoint.objects.get(name="local").api_key == PLANTED_KEY


def test_saving_without_a_key_keeps_it_and_clearing_removes_it(admin_client: Any) -> None:
    endpoint = make_endpoint(FORM["base_url"], name="local", api_key=PLANTED_KEY)
    url = reverse("admin:llm_endpoint_change", args=[endpoint.pk])
    assert admin_client.post(url, {**FORM, "default_model": "fake-model"}).status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.default_model, endpoint.api_key) == ("fake-model", PLANTED_KEY)
    assert admin_client.post(url, {**FORM, "clear_api_key": "on"}).status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.api_key == ""


def test_bad_values_are_shown_on_the_form_and_change_nothing(admin_client: Any) -> None:
    endpoint = make_endpoint(name="local")
    url = reverse("admin:llm_endpoint_change", args=[endpoint.pk])
    response = admin_client.post(url, {**FORM, "max_concurrency": "0", "headers": "X Team ml"})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "max_concurrency" in errors and "headers" in errors
    endpoint.refresh_from_db()
    assert endpoint.max_concurrency == 64


def test_the_connectivity_action_reports_each_check(admin_client: Any, fake_llm: FakeLLM) -> None:
    endpoint = make_endpoint(fake_llm.base_url, name="local", api_key=PLANTED_KEY)
    response = admin_client.post(reverse("admin:llm_endpoint_changelist"),
                                 {"action": "run_connectivity_test", "_selected_action": [endpoint.pk]}, follow=True)
    shown = [str(message) for message in get_messages(response.wsgi_request)] or [
        str(m) for m in response.context["messages"]]
    text = "\n".join(shown)
    assert "local (gpt-4o-mini): connectivity test passed" in text
    for check in ("reachable", "model", "completion", "streaming", "stream_usage", "structured_output"):
        assert f"local · {check}: ok" in text
    assert PLANTED_KEY not in response.content.decode()


def test_the_connectivity_action_reports_a_refused_key(admin_client: Any, fake_llm: FakeLLM) -> None:
    fake_llm.control(api_key="sk-other-key-000", echo_key_on_401=True)
    endpoint = make_endpoint(fake_llm.base_url, name="local", api_key=PLANTED_KEY)
    response = admin_client.post(reverse("admin:llm_endpoint_changelist"),
                                 {"action": "run_connectivity_test", "_selected_action": [endpoint.pk]}, follow=True)
    page = response.content.decode()
    assert "connectivity test failed (auth)" in page
    assert "the endpoint refused the API key" in page
    assert PLANTED_KEY[-4:] not in page
