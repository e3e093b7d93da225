"""The Prices page: permissions as on the API, writes through prices.services, errors next to the field."""
from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from llm.models import Endpoint
from prices.models import Price
from tests.factories import make_endpoint
from tests.prices.conftest import make_price

pytestmark = pytest.mark.django_db

FORM = {"model": "qwen2.5:7b", "match": "exact", "endpoint": "", "effective_from": "2026-01-01T00:00",
        "input_per_million": "0.10", "output_per_million": "0.30", "cached_input_per_million": "",
        "reasoning_per_million": "", "currency": "USD", "note": ""}
ALL = ("prices.view_price", "prices.add_price", "prices.change_price", "prices.delete_price")


def test_urls_are_where_other_pages_link() -> None:
    assert reverse("prices:list") == "/prices/"
    assert reverse("prices:create") == "/prices/new/"
    assert reverse("prices:edit", args=[3]) == "/prices/3/"
    assert reverse("prices:delete", args=[3]) == "/prices/3/delete/"


def test_anonymous_visitors_log_in_and_others_need_the_view_permission(
        client: Client, client_with_perms: Callable[..., Client]) -> None:
    price = make_price("m")
    urls = [reverse("prices:list"), reverse("prices:create"), reverse("prices:edit", args=[price.pk]),
            reverse("prices:delete", args=[price.pk])]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url
    stranger = client_with_perms("llm.view_endpoint")
    for url in urls:
        assert stranger.get(url).status_code == 403, url


def test_each_write_needs_its_own_permission(client_with_perms: Callable[..., Client]) -> None:
    price = make_price("m")
    viewer = client_with_perms("prices.view_price")
    page = viewer.get(reverse("prices:list"))
    assert page.status_code == 200 and b"Add a price" not in page.content
    assert viewer.post(reverse("prices:create"), FORM).status_code == 403
    assert viewer.post(reverse("prices:edit", args=[price.pk]), {**FORM, "model": "m"}).status_code == 403
    assert viewer.post(reverse("prices:delete", args=[price.pk])).status_code == 403
    assert list(Price.objects.values_list("model", "version")) == [("m", 1)]


def test_the_table_shows_each_entry(client_with_perms: Callable[..., Client]) -> None:
    endpoint = make_endpoint(name="ollama")
    make_price("qwen.*", match="regex", endpoint=endpoint, cached_input_per_million="0.075", note="estimate")
    make_price("gpt-4o", input_per_million="2.5", currency="EUR")
    html = client_with_perms(*ALL).get(reverse("prices:list")).content.decode()
    assert "/qwen.*/" in html and "ollama" in html and "0.075" in html and "estimate" in html
    assert "every endpoint" in html and "2.50" in html and "EUR" in html
    assert 'href="/prices/new/"' in html


def test_create_edit_and_delete_through_the_pages(client_with_perms: Callable[..., Client]) -> None:
    browser = client_with_perms(*ALL)
    response = browser.post(reverse("prices:create"), FORM)
    assert response.status_code == 302, response.content.decode()
    price = Price.objects.get()
    assert (price.model, str(price.input_per_million), price.version) == ("qwen2.5:7b", "0.100000", 1)
    response = browser.post(reverse("prices:edit", args=[price.pk]), {**FORM, "output_per_million": "0.5"})
    assert response.status_code == 302
    price.refresh_from_db()
    assert (str(price.output_per_million), price.version) == ("0.500000", 2)
    assert browser.post(reverse("prices:delete", args=[price.pk])).status_code == 302
    assert not Price.objects.exists()


def test_the_add_form_is_filled_in_from_the_link(client_with_perms: Callable[..., Client]) -> None:
    endpoint = make_endpoint(name="ollama")
    page = client_with_perms(*ALL).get(f"/prices/new/?model=qwen2.5:7b&endpoint={endpoint.pk}")
    form = page.context["form"]
    assert form["model"].value() == "qwen2.5:7b" and str(form["endpoint"].value()) == str(endpoint.pk)
    assert 'value="qwen2.5:7b"' in page.content.decode()


def test_errors_are_shown_next_to_their_field(client_with_perms: Callable[..., Client]) -> None:
    browser = client_with_perms(*ALL)
    first = make_price("qwen2.5:7b", effective_from="2026-01-01T00:00:00Z")
    for changes, field in (({"input_per_million": "-1"}, "input_per_million"),
                           ({"model": "qwen(", "match": "regex"}, "model"),
                           ({"currency": "usd"}, "currency"),
                           ({}, "model")):  # the same model from the same moment: a tie with `first`
        response = browser.post(reverse("prices:create"), {**FORM, **changes})
        assert response.status_code == 400, changes
        errors = response.context["form"].errors
        assert field in errors, (changes, errors)
        assert f'id="id_{field}_errors"' in response.content.decode()
    tie = browser.post(reverse("prices:create"), FORM).context["form"].errors["model"][0]
    assert f"#{first.pk}" in tie
    assert Price.objects.count() == 1


def test_the_resolve_box_says_which_entry_wins_and_why(client_with_perms: Callable[..., Client]) -> None:
    endpoint = make_endpoint(name="ollama")
    general = make_price("qwen.*", match="regex")
    specific = make_price("qwen2.5:7b", endpoint=endpoint)
    browser = client_with_perms("prices.view_price", "prices.add_price")
    page = browser.get(f"/prices/?resolve-endpoint={endpoint.pk}&resolve-model=qwen2.5:7b")
    resolution = page.context["resolution"]
    assert resolution.rate.price_id == specific.pk
    assert [c.price.pk for c in resolution.candidates] == [specific.pk, general.pk]
    html = page.content.decode()
    assert 'id="resolve-answer"' in html and "wins" in html
    unknown = browser.get(f"/prices/?resolve-endpoint={endpoint.pk}&resolve-model=llama3").content.decode()
    assert "No price for model <code>llama3</code> on endpoint <code>ollama</code>" in unknown
    assert f"/prices/new/?model=llama3&amp;endpoint={endpoint.pk}" in unknown


def test_the_endpoint_page_edits_pricing(client_with_perms: Callable[..., Client]) -> None:
    endpoint = make_endpoint("http://127.0.0.1:8001/v1", name="gpu", default_model="qwen2.5:7b")
    browser = client_with_perms("llm.view_endpoint", "llm.change_endpoint", "prices.view_price", "prices.add_price")
    page = browser.get(reverse("endpoint-edit", args=[endpoint.pk])).content.decode()
    assert 'id="endpoint-pricing"' in page and f"/prices/new/?endpoint={endpoint.pk}&amp;model=qwen2.5%3A7b" in page
    form = {"name": "gpu", "base_url": "http://127.0.0.1:8001/v1", "default_model": "qwen2.5:7b", "enabled": "on",
            "timeout_seconds": "60", "max_retries": "3", "max_concurrency": "64", "headers": "",
            "pricing": "per_second", "price_per_second": "", "price_currency": "EUR"}
    refused = browser.post(reverse("endpoint-edit", args=[endpoint.pk]), form)
    assert refused.status_code == 400 and "price_per_second" in refused.context["form"].errors
    saved = browser.post(reverse("endpoint-edit", args=[endpoint.pk]), {**form, "price_per_second": "0.0004"})
    assert saved.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.pricing, str(endpoint.price_per_second), endpoint.price_currency) == (
        Endpoint.PRICING_PER_SECOND, "0.000400", "EUR")


def test_the_navigation_links_the_prices_page(client_with_perms: Callable[..., Client]) -> None:
    html = client_with_perms(*ALL).get(reverse("prices:list")).content.decode()
    assert 'href="/prices/" aria-current="page"' in html


def test_a_saved_price_offers_to_reprice_the_steps_it_now_covers(client_with_perms: Callable[..., Client]) -> None:
    browser = client_with_perms(*ALL)
    response = browser.post(reverse("prices:create"), FORM, follow=True)
    offer = response.content.decode()
    assert 'id="reprice-offer"' in offer and "Steps of “qwen2.5:7b” from 2026-01-01 00:00 on" in offer
    link = response.context["saved"]["url"]
    assert link == reverse("reprice") + "?model=qwen2%5C.5%3A7b&since=2026-01-01+00%3A00"
    reprice = browser.get(link).content.decode()
    assert 'value="qwen2\\.5:7b"' in reprice and 'value="2026-01-01 00:00"' in reprice
    assert 'id="reprice-offer"' not in browser.get(reverse("prices:list")).content.decode()
