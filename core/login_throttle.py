"""Failed log-ins are throttled per client address (core.client_address), with the rate of DRF's "login" throttle scope.

Django's log-in pages are not DRF views, so a middleware applies the throttle: a POST that fails
(the form comes back instead of a redirect) is counted; once the rate is spent, log-in POSTs get
a 429 that says when to try again, without the password being checked at all.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from rest_framework.throttling import SimpleRateThrottle

from core.client_address import ClientAddressMixin

LOGIN_PATHS = ("/accounts/login/", "/admin/login/", "/api/auth/login/")


class LoginRateThrottle(ClientAddressMixin, SimpleRateThrottle):
    scope = "login"

    def get_cache_key(self, request: HttpRequest, view: object) -> str:  # type: ignore[override]
        return f"throttle_login_{self.get_ident(request)}"

    def failures(self, request: HttpRequest) -> list[float]:
        now = time.time()
        return [t for t in cache.get(self.get_cache_key(request, None), []) if t > now - self.duration]

    def spent(self, request: HttpRequest) -> float | None:
        """Seconds until the next attempt is allowed, or None if one is allowed now."""
        if self.rate is None:
            return None
        failures = self.failures(request)
        if len(failures) < self.num_requests:
            return None
        return max(1.0, failures[-self.num_requests] + self.duration - time.time())

    def record_failure(self, request: HttpRequest) -> None:
        if self.rate is None:
            return
        failures = [*self.failures(request), time.time()]
        cache.set(self.get_cache_key(request, None), failures[-self.num_requests:], self.duration)


class LoginThrottleMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or request.path not in LOGIN_PATHS:
            return self.get_response(request)
        throttle = LoginRateThrottle()
        wait = throttle.spent(request)
        if wait is not None:
            response = HttpResponse(
                f"Too many failed log-ins from this address. Try again in {int(wait) + 1} seconds.\n",
                status=429, content_type="text/plain; charset=utf-8",
            )
            response["Retry-After"] = str(int(wait) + 1)
            return response
        response = self.get_response(request)
        # A successful log-in redirects; a failed one shows the form again.
        if response.status_code == 200:
            throttle.record_failure(request)
        return response
