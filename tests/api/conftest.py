"""Fixtures for API tests: an authenticated client and a few resources built with tests.factories."""
import pytest
from rest_framework.test import APIClient

from tests.factories import make_block, make_endpoint, make_payload


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


@pytest.fixture
def endpoint(db):  # type: ignore[no-untyped-def]
    return make_endpoint(name="local")


@pytest.fixture
def topic_block(db):  # type: ignore[no-untyped-def]
    return make_block("outline-task", "Write a short outline about {{ topic }}.")


@pytest.fixture
def system_block(db):  # type: ignore[no-untyped-def]
    return make_block("be-brief", "You are brief.")


@pytest.fixture
def outline_payload(endpoint, system_block, topic_block):  # type: ignore[no-untyped-def]
    return make_payload("outline", endpoint, [("system", system_block), ("user", topic_block)])
