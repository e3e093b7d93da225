"""The Endpoints page: permissions as on the API, writes through the services, secrets never in the HTML."""
from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from llm.models import Endpoint
from tests.factories import make_block, make_endpoint, make_payload
from tests.fake_llm import FakeLLM
from tests.llm.conftest import PLANTED_KEY

pytestmark = pytest.mark.django_db

HEADER_SECRET = "azure-header-secret-Hq2Lx9"
FORM = {"name": "local", "base_url": "http://127.0.0.1:8001/v1", "default_model": "gpt-4o-mini", "enabled": "on",
        "timeout_seconds": "60", "max_retries": "3", "max_concurrency": "64", "headers": ""}
ALL = ("llm.view_endpoint", "llm.add_endpoint", "llm.change_endpoint", "llm.delete_endpoint")


def pages(endpoint: Endpoint) -> list[str]:
    return [reverse("endpoint-list"), reverse("endpoint-new"), reverse("endpoint-edit", args=[endpoint.pk]),
            reverse("endpoint-delete", args=[endpoint.pk])]


def test_urls_are_where_the_navigation_expects_them() -> None:
    assert reverse("endpoint-list") == "/endpoints/"
    assert reverse("endpoint-new") == "/endpoints/new/"
    assert reverse("endpoint-edit", args=[3]) == "/endpoints/3/"
    assert reverse("endpoint-delete", args=[3]) == "/endpoints/3/delete/"


def test_anonymous_visitors_are_sent_to_log_in(client: Client) -> None:
    endpoint = make_endpoint()
    for url in pages(endpoint):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url
    assert client.post(reverse("endpoint-test", args=[endpoint.pk])).status_code == 302


def test_users_without_the_view_permission_get_403(client_with_perms: Callable[..., Client]) -> None:
    endpoint = make_endpoint()
    browser = client_with_perms("payloads.view_payload")
    for url in pages(endpoint):
        assert browser.get(url).status_code == 403, url


def test_each_write_needs_its_own_permission(client_with_perms: Callable[..., Client]) -> None:
    endpoint = make_endpoint(api_key=PLANTED_KEY)
    viewer = client_with_perms("llm.view_endpoint")
    assert viewer.get(reverse("endpoint-list")).status_code == 200
    assert viewer.post(reverse("endpoint-new"), {**FORM, "name": "other"}).status_code == 403
    assert viewer.post(reverse("endpoint-edit", args=[endpoint.pk]), {**FORM, "name": "renamed"}).status_code == 403
    assert viewer.post(reverse("endpoint-delete", args=[endpoint.pk])).status_code == 403
    assert viewer.post(reverse("endpoint-test", args=[endpoint.pk])).status_code == 403
    assert list(Endpoint.objects.values_list("name", flat=True)) == ["fake"]


def test_create_edit_and_delete_through_the_pages(client_with_perms: Callable[..., Client]) -> None:
    browser = client_with_perms(*ALL)
    response = browser.post(reverse("endpoint-new"), {**FORM, "api_key": PLANTED_KEY,
                                                      "headers": f"api-key: {HEADER_SECRET}\nX-Team: ml"})
    endpoint = Endpoint.objects.get(name="local")
    assert response.status_code == 302 and response["Location"] == reverse("endpoint-edit", args=[endpoint.pk])
    assert endpoint.api_key == PLANTED_KEY
    assert endpoint.extra_headers == {"api-key": HEADER_SECRET, "X-Team": "ml"}

    # The page shows header names with blank values: saving it as it is keeps the key and the values.
    page = browser.get(reverse("endpoint-edit", args=[endpoint.pk])).content.decode()
    assert "api-key:\nX-Team:" in page
    edit = {**FORM, "default_model": "fake-model", "headers": "api-key:\nX-Team: research"}
    assert browser.post(reverse("endpoint-edit", args=[endpoint.pk]), edit).status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.default_model == "fake-model" and endpoint.api_key == PLANTED_KEY
    assert endpoint.extra_headers == {"api-key": HEADER_SECRET, "X-Team": "research"}

    assert browser.post(reverse("endpoint-edit", args=[endpoint.pk]), {**edit, "api_key": "sk-new"}).status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.api_key == "sk-new"
    assert browser.post(reverse("endpoint-edit", args=[endpoint.pk]), {**edit, "clear_api_key": "on"}).status_code == 302
    endpoint.refresh_from_db()
    assert not endpoint.has_api_key

    assert browser.post(reverse("endpoint-delete", args=[endpoint.pk])).status_code == 302
    assert not Endpoint.objects.exists()


def test_moving_the_url_to_another_server_on_the_page_clears_the_key(client_with_perms: Callable[..., Client]) -> None:
    endpoint = make_endpoint(FORM["base_url"], name="local", api_key=PLANTED_KEY, extra_headers={"api-key": HEADER_SECRET})
    browser = client_with_perms(*ALL)
    moved = {**FORM, "base_url": "http://127.0.0.1:9999/v1", "headers": "api-key:"}
    response = browser.post(reverse("endpoint-edit", args=[endpoint.pk]), moved, follow=True)
    assert "were cleared" in response.content.decode()
    endpoint.refresh_from_db()
    assert not endpoint.has_api_key and endpoint.extra_headers == {}


def test_bad_input_is_shown_next_to_the_field_and_writes_nothing(client_with_perms: Callable[..., Client]) -> None:
    endpoint = make_endpoint(FORM["base_url"], name="local", api_key=PLANTED_KEY)
    browser = client_with_perms(*ALL)
    response = browser.post(reverse("endpoint-edit", args=[endpoint.pk]),
                            {**FORM, "base_url": "http://169.254.169.254/v1", "headers": f"api-key {HEADER_SECRET}",
                             "api_key": "sk-typed-now"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "not allowed" in page and "Line 1" in page
    assert HEADER_SECRET not in page and "sk-typed-now" not in page
    endpoint.refresh_from_db()
    assert endpoint.base_url == FORM["base_url"] and endpoint.api_key == PLANTED_KEY


def test_no_page_renders_the_key_or_a_header_value(client_with_perms: Callable[..., Client]) -> None:
    endpoint = make_endpoint(name="local", api_key=PLANTED_KEY, extra_headers={"api-key": HEADER_SECRET})
    browser = client_with_perms(*ALL)
    for url in [*pages(endpoint), reverse("llm-tester")]:
        page = browser.get(url).content.decode()
        assert PLANTED_KEY not in page and HEADER_SECRET not in page and endpoint.api_key_encrypted not in page, url
    listing = browser.get(reverse("endpoint-list")).content.decode()
    assert "api-key" in listing and ">set<" in listing


def test_deleting_an_endpoint_in_use_is_refused_and_names_the_payloads(client_with_perms: Callable[..., Client]) -> None:
    endpoint = make_endpoint(name="local")
    payload = make_payload("outline", endpoint, [("user", make_block("b", "Hi"))])
    browser = client_with_perms(*ALL)
    response = browser.post(reverse("endpoint-delete", args=[endpoint.pk]))
    assert response.status_code == 409
    page = response.content.decode()
    assert f'href="{reverse("payload-edit", args=[payload.pk])}">outline</a>' in page
    assert Endpoint.objects.filter(pk=endpoint.pk).exists()
    listing = browser.get(reverse("endpoint-list")).content.decode()
    assert f'href="{reverse("payload-edit", args=[payload.pk])}">outline</a>' in listing


def test_the_test_button_runs_the_connectivity_test(client_with_perms: Callable[..., Client], fake_llm: FakeLLM) -> None:
    endpoint = make_endpoint(fake_llm.base_url, name="local", api_key=PLANTED_KEY)
    response = client_with_perms(*ALL).post(reverse("endpoint-test", args=[endpoint.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="connectivity-report"' in page and ">works<" in page
    assert PLANTED_KEY not in page


def test_the_tester_and_the_payload_builder_link_to_the_endpoints_page(client_with_perms: Callable[..., Client]) -> None:
    make_endpoint()
    browser = client_with_perms(*ALL, "payloads.view_payload")
    link = f'href="{reverse("endpoint-list")}"'
    assert link in browser.get(reverse("llm-tester")).content.decode()
    assert link in browser.get(reverse("payload-new")).content.decode()
