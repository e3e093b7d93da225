"""A forged X-Forwarded-For does not buy fresh log-in attempts: the header counts only when NUM_PROXIES
says how many proxies append to it, and then only the hop the outermost proxy saw."""
import pytest
from django.test import Client
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

pytestmark = pytest.mark.django_db

LOGIN_PATHS = ["/accounts/login/", "/admin/login/", "/api/auth/login/"]


def _guess(path: str, forwarded: str, remote: str = "203.0.113.7") -> int:
    return Client(REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded).post(
        path, {"username": "admin", "password": "wrong"}).status_code


@pytest.fixture(autouse=True)
def _one_a_minute(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Each failed guess hashes a password: one allowed guess keeps these tests fast.
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "login", "1/minute")


@pytest.mark.parametrize("path", LOGIN_PATHS)
def test_without_num_proxies_a_forged_header_is_ignored(user, path):
    assert [_guess(path, f"198.51.100.{i}") for i in range(3)] == [200, 429, 429]


def test_with_one_proxy_the_rightmost_hop_is_the_client_whatever_the_client_prepended(user, monkeypatch):
    monkeypatch.setattr(api_settings, "NUM_PROXIES", 1)
    # The proxy (REMOTE_ADDR 10.0.0.2) appends the address it saw; what the client sent comes first.
    answers = [_guess("/accounts/login/", f"198.51.100.{i}, 192.0.2.50", remote="10.0.0.2") for i in range(3)]
    assert answers == [200, 429, 429]
    # Another client behind the same proxy has a budget of its own.
    assert _guess("/accounts/login/", "192.0.2.51", remote="10.0.0.2") == 200


def test_with_two_proxies_the_address_two_hops_from_the_right_counts(user, monkeypatch):
    monkeypatch.setattr(api_settings, "NUM_PROXIES", 2)
    answers = [_guess("/admin/login/", f"198.51.100.{i}, 192.0.2.50, 10.0.0.1", remote="10.0.0.2")
               for i in range(3)]
    assert answers == [200, 429, 429]
