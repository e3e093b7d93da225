"""`make run`'s demo prices the mock endpoint's model, so a demo run shows a cost at once."""
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from llm.models import Endpoint
from prices.book import COST_COMPUTED, rate_for
from prices.models import Price
from prices.services import price_save

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_the_mock_endpoint_gets_a_price_once_and_an_edit_is_kept() -> None:
    seed()
    mock = Endpoint.objects.get(is_mock=True)
    price = Price.objects.get()
    assert (price.endpoint_id, price.model, price.note) == (mock.pk, mock.default_model, "demo price for the mock model")
    rate = rate_for(mock.pk, mock.default_model, timezone.now())
    assert (rate.source, rate.price_id) == (COST_COMPUTED, price.pk)
    price_save(price, fields={"input_per_million": Decimal("0.2")})
    seed()
    assert list(Price.objects.values_list("input_per_million", "version")) == [(Decimal("0.2"), 2)]
