"""/api/prices/ and /api/prices/resolve/: permissions, decimals as strings, every bad input a 400 naming the field."""
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from llm.models import Endpoint
from prices.models import Price
from tests.factories import make_endpoint
from tests.prices.conftest import make_price

pytestmark = pytest.mark.django_db

VALID = {"model": "qwen2.5:7b", "match": "exact", "endpoint": None, "effective_from": "2026-01-01T00:00:00Z",
         "input_per_million": "0.10", "output_per_million": "0.30", "currency": "USD"}




def create(api: APIClient, **overrides: Any) -> Any:
    return api.post("/api/prices/", {**VALID, **overrides}, format="json")


def test_create_read_update_delete(api: APIClient) -> None:
    endpoint = make_endpoint(name="ollama")
    response = create(api, endpoint=endpoint.pk, cached_input_per_million="0.05", note="self-hosted estimate")
    assert response.status_code == 201, response.data
    body = response.data
    assert body["input_per_million"] == "0.100000" and body["cached_input_per_million"] == "0.050000"
    assert body["reasoning_per_million"] is None
    assert (body["endpoint"], body["endpoint_name"], body["version"]) == (endpoint.pk, "ollama", 1)
    url = f"/api/prices/{body['id']}/"
    assert api.get(url).data["model"] == "qwen2.5:7b"
    changed = api.patch(url, {"output_per_million": "0.35"}, format="json")
    assert changed.status_code == 200, changed.data
    assert (changed.data["output_per_million"], changed.data["version"]) == ("0.350000", 2)
    assert api.delete(url).status_code == 204
    assert not Price.objects.exists()


@pytest.mark.parametrize(("overrides", "field"), [
    ({"input_per_million": "-0.01"}, "input_per_million"),
    ({"reasoning_per_million": "-1"}, "reasoning_per_million"),
    ({"output_per_million": "abc"}, "output_per_million"),
    ({"model": "qwen(", "match": "regex"}, "model"),
    ({"currency": "usd"}, "currency"),
    ({"currency": "DOLLAR"}, "currency"),
    ({"match": "glob"}, "match"),
    ({"effective_from": "soon"}, "effective_from"),
    ({"endpoint": 999_999}, "endpoint"),
    ({"colour": "red"}, "colour"),
    ({"model": 7}, "model"),
])
def test_bad_input_is_a_400_naming_the_field(api: APIClient, overrides: dict[str, Any], field: str) -> None:
    response = create(api, **overrides)
    assert response.status_code == 400
    assert field in response.data, response.data
    assert not Price.objects.exists()


def test_a_tie_is_a_400_on_model_naming_the_rival(api: APIClient) -> None:
    first = create(api).data["id"]
    response = create(api, note="the same again")
    assert response.status_code == 400 and list(response.data) == ["model"], response.data
    assert f"#{first}" in response.data["model"][0]
    make_endpoint(name="ollama", default_model="qwen2.5:7b")
    assert create(api, model="qwen.*", match="regex").status_code == 201
    tie = create(api, model=".*:7b", match="regex")
    assert tie.status_code == 400 and "qwen2.5:7b" in tie.data["model"][0]
    assert create(api, model=".*:7b", match="regex", effective_from="2026-02-01T00:00:00Z").status_code == 201


def test_an_edit_into_a_tie_is_refused_and_changes_nothing(api: APIClient) -> None:
    create(api)
    other = create(api, effective_from="2026-02-01T00:00:00Z").data["id"]
    response = api.patch(f"/api/prices/{other}/", {"effective_from": "2026-01-01T00:00:00Z"}, format="json")
    assert response.status_code == 400 and "model" in response.data
    assert Price.objects.get(pk=other).version == 1


def test_filters(api: APIClient) -> None:
    endpoint = make_endpoint(name="ollama")
    make_price("qwen2.5:7b", endpoint=endpoint)
    make_price("gpt-4o", currency="EUR")
    make_price("gpt-4o-mini")

    def models(query: str) -> list[str]:
        return sorted(row["model"] for row in api.get(f"/api/prices/?{query}").data["results"])

    assert models("model=gpt") == ["gpt-4o", "gpt-4o-mini"]
    assert models(f"endpoint={endpoint.pk}") == ["qwen2.5:7b"]
    assert models("endpoint=0") == ["gpt-4o", "gpt-4o-mini"]
    assert models("currency=EUR") == ["gpt-4o"]


def test_resolve_answers_the_rate_and_why(api: APIClient) -> None:
    endpoint = make_endpoint(name="ollama")
    general = make_price("qwen.*", match="regex", input_per_million="0.2", cached_input_per_million="0.1")
    specific = make_price("qwen2.5:7b", endpoint=endpoint, effective_from="2026-03-01T00:00:00Z")
    response = api.get(f"/api/prices/resolve/?endpoint={endpoint.pk}&model=qwen2.5:7b&at=2026-06-01T00:00:00Z")
    assert response.status_code == 200, response.data
    body = response.data
    assert (body["source"], body["price_id"], body["price_version"], body["currency"]) == (
        "computed", specific.pk, 1, "USD")
    assert (body["input_per_million"], body["output_per_million"]) == ("1.000000", "2.000000")
    assert f"#{specific.pk}" in body["basis"]
    assert [c["id"] for c in body["candidates"]] == [specific.pk, general.pk]
    # Before the endpoint's entry takes effect, the pattern for every endpoint prices it.
    earlier = api.get(f"/api/prices/resolve/?endpoint={endpoint.pk}&model=qwen2.5:7b&at=2026-02-01T00:00:00Z").data
    assert (earlier["price_id"], earlier["cached_input_per_million"]) == (general.pk, "0.100000")
    assert earlier["candidates"][0]["in_effect"] is False


def test_resolve_tells_unknown_and_free(api: APIClient) -> None:
    endpoint = make_endpoint(name="ollama")
    unknown = api.get(f"/api/prices/resolve/?endpoint={endpoint.pk}&model=llama3").data
    assert unknown["source"] == "unknown" and unknown["price_id"] is None
    assert "llama3" in unknown["basis"] and "ollama" in unknown["basis"]
    api.patch(f"/api/endpoints/{endpoint.pk}/", {"pricing": "free"}, format="json")
    free = api.get(f"/api/prices/resolve/?endpoint={endpoint.pk}&model=llama3").data
    assert free["source"] == "free"


def test_resolve_refuses_bad_questions_by_field(api: APIClient) -> None:
    for query, field in (("endpoint=1", "model"), ("model=m&endpoint=999999", "endpoint"),
                         ("model=m&at=tuesday", "at"), ("model=m&colour=red", "colour")):
        response = api.get(f"/api/prices/resolve/?{query}")
        assert response.status_code == 400 and field in response.data, (query, response.data)


def test_endpoint_pricing_is_read_and_written_on_the_endpoint_api(api: APIClient) -> None:
    endpoint = make_endpoint(name="gpu")
    url = f"/api/endpoints/{endpoint.pk}/"
    assert api.get(url).data["pricing"] == "tokens"
    missing = api.patch(url, {"pricing": "per_second"}, format="json")
    assert missing.status_code == 400 and "price_per_second" in missing.data
    bad = api.patch(url, {"price_currency": "eur"}, format="json")
    assert bad.status_code == 400 and "price_currency" in bad.data
    done = api.patch(url, {"pricing": "per_second", "price_per_second": "0.0004", "price_currency": "EUR"},
                     format="json")
    assert done.status_code == 200, done.data
    assert (done.data["price_per_second"], done.data["price_currency"]) == ("0.000400", "EUR")
    assert Endpoint.objects.get(pk=endpoint.pk).pricing == Endpoint.PRICING_PER_SECOND


def test_every_route_needs_authentication_and_its_permission(api_with_perms: Callable[..., APIClient]) -> None:
    price = make_price("m")
    url = f"/api/prices/{price.pk}/"
    anonymous = APIClient()
    for path in ("/api/prices/", url, "/api/prices/resolve/?model=m"):
        assert anonymous.get(path).status_code in (401, 403)
    nobody = api_with_perms()
    assert nobody.get("/api/prices/").status_code == 403
    assert nobody.get("/api/prices/resolve/?model=m").status_code == 403
    viewer = api_with_perms("prices.view_price")
    assert viewer.get(url).status_code == 200 and viewer.get("/api/prices/resolve/?model=m").status_code == 200
    assert create(viewer, model="n").status_code == 403
    assert viewer.patch(url, {"note": "x"}, format="json").status_code == 403
    assert viewer.delete(url).status_code == 403
    adder = api_with_perms("prices.view_price", "prices.add_price")
    assert create(adder, model="n").status_code == 201
    assert adder.patch(url, {"note": "x"}, format="json").status_code == 403
    assert api_with_perms("prices.view_price", "prices.change_price").patch(url, {"note": "x"}, format="json").status_code == 200
    assert api_with_perms("prices.view_price", "prices.delete_price").delete(url).status_code == 204
