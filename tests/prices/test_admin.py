"""The price book in the admin: saved through prices.services (ties refused on "model", versions counted)."""
from typing import Any

import pytest
from django.urls import reverse

from prices.models import Price
from tests.factories import make_endpoint
from tests.prices.conftest import make_price

pytestmark = pytest.mark.django_db

FORM = {"model": "gpt-4o", "match": "exact", "endpoint": "", "effective_from_0": "2026-01-01",
        "effective_from_1": "00:00:00", "input_per_million": "2.5", "output_per_million": "10",
        "cached_input_per_million": "", "reasoning_per_million": "", "currency": "USD", "note": ""}


def test_add_and_edit_count_versions(admin_client: Any) -> None:
    assert admin_client.post(reverse("admin:prices_price_add"), FORM).status_code == 302
    price = Price.objects.get()
    assert price.version == 1
    url = reverse("admin:prices_price_change", args=[price.pk])
    assert admin_client.post(url, {**FORM, "output_per_million": "12"}).status_code == 302
    price.refresh_from_db()
    assert (str(price.output_per_million), price.version) == ("12.000000", 2)


def test_a_tie_is_refused_on_the_model_field(admin_client: Any) -> None:
    first = make_price("gpt-4o", effective_from="2026-01-01T00:00:00Z")
    response = admin_client.post(reverse("admin:prices_price_add"), FORM)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["model"] and f"#{first.pk}" in errors["model"][0]
    make_endpoint(name="ollama", default_model="qwen2.5:7b")
    make_price("qwen.*", match="regex", effective_from="2026-01-01T00:00:00Z")
    response = admin_client.post(reverse("admin:prices_price_add"), {**FORM, "model": ".*:7b", "match": "regex"})
    assert "qwen2.5:7b" in response.context["adminform"].form.errors["model"][0]
    assert Price.objects.count() == 2


def test_bad_values_are_refused_by_field(admin_client: Any) -> None:
    for changes, field in (({"input_per_million": "-1"}, "input_per_million"),
                           ({"model": "gpt(", "match": "regex"}, "model"), ({"currency": "us"}, "currency")):
        response = admin_client.post(reverse("admin:prices_price_add"), {**FORM, **changes})
        assert field in response.context["adminform"].form.errors, changes
    assert not Price.objects.exists()


def test_the_endpoint_admin_has_a_pricing_fieldset(admin_client: Any) -> None:
    endpoint = make_endpoint(name="gpu")
    html = admin_client.get(reverse("admin:llm_endpoint_change", args=[endpoint.pk])).content.decode()
    assert "Pricing" in html and 'name="price_per_second"' in html and 'name="pricing"' in html


def test_admin_needs_the_model_permissions(client: Any, django_user_model: Any) -> None:
    staff = django_user_model.objects.create_user("staff", password="x", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("admin:prices_price_changelist")).status_code == 403
