"""schemathesis drives every operation of /api/schema/ in-process (WSGI) as a logged-in superuser:
no answer may be a 5xx or contradict the schema. SOAK=1 tries many more examples per operation."""
import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from rest_framework.authtoken.models import Token
from rest_framework.throttling import ScopedRateThrottle
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance

from tests.factories import make_chain, make_endpoint
from tests.reliability.conftest import soak_or

pytestmark = pytest.mark.django_db

EXAMPLES = soak_or(200, 12)
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def _operations() -> list[str]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [f"{method.upper()} {path}" for path, item in schema["paths"].items() for method in item
            if method in {"get", "post", "put", "patch", "delete"}]


@pytest.fixture
def loaded_schema(user, fake_llm, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "runs", None)
    # Real objects with ids 1.. so that generated ids sometimes hit something.
    workflow = make_chain(make_endpoint(fake_llm.base_url))
    make_endpoint(fake_llm.base_url, name="second")
    # As Django's test client does: the test's transaction must outlive each request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    token = Token.objects.create(user=user).key
    headers = {"Authorization": f"Token {token}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application(), headers=headers)
    yield schema, headers, workflow
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.mark.parametrize("operation_label", _operations())
def test_operation_answers_within_its_schema_and_never_with_a_5xx(loaded_schema, operation_label):
    schema, headers, _workflow = loaded_schema
    operation = schema.find_operation_by_label(operation_label)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def exercise(case):  # type: ignore[no-untyped-def]
        case.call_and_validate(headers=headers, checks=CHECKS)

    exercise()
