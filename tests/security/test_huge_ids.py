"""An id beyond the database's integer range is a 404 on every route that takes one, like an unknown id."""
import re
from collections.abc import Iterator

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.converters import IntConverter
from django.urls.resolvers import RegexPattern, RoutePattern

from core.converters import IdConverter
from runs.models import Run
from runs.services import run_start
from tests.factories import make_chain, make_endpoint

pytestmark = pytest.mark.django_db

HUGE = [str(2**64), str(2**63)]  # past 64 bits, and one past BigAutoField's largest id
PARAM = re.compile(r"<(?:\w+:)?\w+>")
DRF_PK = "(?P<pk>[^/.]+)"


def _id_routes(patterns: list, prefix: str = "") -> Iterator[str]:
    """Every URL (with {} for each id) whose only parameters are ids: pages by converter, the API by pk."""
    for entry in patterns:
        pattern = entry.pattern
        if isinstance(pattern, RoutePattern):
            route = prefix + str(pattern)
            converters = pattern.converters.values()
            if converters and not all(isinstance(c, IdConverter | IntConverter) for c in converters):
                continue
            route = PARAM.sub("{}", route)
        elif isinstance(pattern, RegexPattern) and not prefix.startswith("admin"):
            regex = str(pattern).lstrip("^").rstrip("$")
            if "(?P" in regex.replace(DRF_PK, "") or "\\." in regex:
                continue
            route = prefix + regex.replace(DRF_PK, "{}")
        else:
            continue
        if isinstance(entry, URLResolver):
            yield from _id_routes(entry.url_patterns, route)
        elif isinstance(entry, URLPattern) and "{}" in route:
            yield "/" + route


def test_every_route_with_an_id_answers_404_to_an_id_past_the_database_range(user_client, user):
    workflow = make_chain(make_endpoint())
    run = run_start(workflow=workflow, inputs={"topic": "owls"}, user=user)
    routes = sorted(set(_id_routes(get_resolver().url_patterns)))
    assert "/runs/{}/export.json" in routes and "/api/runs/{}/rerun/" in routes and "/blocks/{}/" in routes
    for route in routes:
        for huge in HUGE:
            url = route.format(*[huge] * route.count("{}"))
            for method in ("get", "post"):
                # The API may refuse the method first (405); pages never match the URL at all.
                allowed = {404, 405} if route.startswith("/api/") else {404}
                assert getattr(user_client, method)(url).status_code in allowed, (method, url)
        if route.count("{}") == 2:  # a real run with a huge step index
            assert user_client.get(route.format(run.pk, HUGE[0])).status_code == 404, route
    assert Run.objects.count() == 1


def test_compare_refuses_a_huge_run_id_as_a_form_error(user_client):
    response = user_client.get(f"/runs/compare/?a={HUGE[0]}&b=1")
    assert response.status_code == 400 and "less than or equal to" in response.content.decode()
