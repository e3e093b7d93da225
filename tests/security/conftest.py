"""Fixtures for the security tests: clients by role and a fresh throttle cache."""
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient


@pytest.fixture(autouse=True)
def _fresh_throttles() -> Iterator[None]:
    # Throttle history lives in the cache: one test's log-ins or runs must not count in another's.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def plain_user(django_user_model):  # type: ignore[no-untyped-def]
    return django_user_model.objects.create_user("viewer", password="pw-for-tests-only")


def client_for(user) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.force_authenticate(user)
    return client
