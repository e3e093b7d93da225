"""Bad request bodies get a clear 4xx and write nothing: oversized, deeply nested, invalid UTF-8,
unknown fields, wrong content types, on every write route of the API."""
import json

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from blocks.models import Block
from llm.models import Endpoint
from payloads.models import Payload
from runs.models import Response, Run
from tests.factories import make_chain, make_endpoint
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

MODELS = (Endpoint, Block, Payload, Workflow, Run, Response)


@pytest.fixture
def write_routes(fake_llm) -> list[tuple[str, str, dict]]:  # type: ignore[no-untyped-def]
    """(method, path, a valid body) for every write route; the bodies are valid so only the fault is tested."""
    workflow = make_chain(make_endpoint(fake_llm.base_url))
    endpoint = workflow.steps.first().payload.endpoint
    block = Block.objects.first()
    payload = Payload.objects.first()
    return [
        ("post", "/api/endpoints/", {"name": "e2", "base_url": fake_llm.base_url, "default_model": "m"}),
        ("patch", f"/api/endpoints/{endpoint.pk}/", {"name": "renamed"}),
        ("post", "/api/blocks/", {"name": "b2", "content": "hello"}),
        ("put", f"/api/blocks/{block.pk}/", {"name": "b3", "content": "hello"}),
        ("post", "/api/payloads/", {"name": "p2", "endpoint": endpoint.pk, "blocks": []}),
        ("patch", f"/api/payloads/{payload.pk}/", {"name": "p3"}),
        ("post", f"/api/payloads/{payload.pk}/preview/", {"variables": {"topic": "x"}}),
        ("post", "/api/workflows/", {"name": "w2", "inputs": [], "steps": []}),
        ("patch", f"/api/workflows/{workflow.pk}/", {"name": "w3"}),
        ("post", f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": "x"}}),
    ]


def counts() -> list[int]:
    return [model.objects.count() for model in MODELS]


def names() -> set[str]:
    return {*Endpoint.objects.values_list("name", flat=True), *Block.objects.values_list("name", flat=True),
            *Payload.objects.values_list("name", flat=True), *Workflow.objects.values_list("name", flat=True)}


def send(api: APIClient, method: str, path: str, body: bytes, content_type: str = "application/json"):  # type: ignore[no-untyped-def]
    return getattr(api, method)(path, body, content_type=content_type)


def assert_refused_and_nothing_written(api, write_routes, make_body, content_type, status, says):  # type: ignore[no-untyped-def]
    before, before_names = counts(), names()
    for method, path, valid in write_routes:
        response = send(api, method, path, make_body(valid), content_type)
        assert response.status_code == status, (method, path, response.status_code, response.content[:300])
        assert response["Content-Type"].startswith("application/json"), (method, path)
        message = json.dumps(response.json())
        assert any(text in message for text in says), (method, path, message[:300])
    assert counts() == before and names() == before_names


def test_oversized_bodies_are_413_everywhere(api, write_routes):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    def oversized(valid: dict) -> bytes:
        return json.dumps({**valid, "description": "x" * (limit + 1)}).encode()

    assert_refused_and_nothing_written(api, write_routes, oversized, "application/json", 413, [str(limit)])


def test_deeply_nested_json_is_a_400(api, write_routes):
    def nested(valid: dict) -> bytes:
        return b'{"name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

    assert_refused_and_nothing_written(api, write_routes, nested, "application/json", 400,
                                       ["JSON parse error", "nested", "deep"])


def test_invalid_utf8_is_a_400(api, write_routes):
    def invalid_utf8(valid: dict) -> bytes:
        return json.dumps(valid).encode()[:-1] + b', "name": "\xff\xfe\xc3"}'

    assert_refused_and_nothing_written(api, write_routes, invalid_utf8, "application/json", 400,
                                       ["JSON parse error", "utf-8"])


def test_unknown_fields_are_a_400_naming_the_field(api, write_routes):
    def with_typo(valid: dict) -> bytes:
        return json.dumps({**valid, "nmae": "typo"}).encode()

    assert_refused_and_nothing_written(api, write_routes, with_typo, "application/json", 400, ['"nmae"'])


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "image/png"])
def test_wrong_content_types_are_a_415(api, write_routes, content_type):
    assert_refused_and_nothing_written(api, write_routes, lambda valid: json.dumps(valid).encode(), content_type, 415,
                                       ["Unsupported media type"])


def test_the_valid_bodies_are_accepted(api, write_routes):
    # The refusals above are caused by the faults, not by bodies that were wrong to begin with.
    for method, path, valid in write_routes:
        response = send(api, method, path, json.dumps(valid).encode())
        assert response.status_code < 300, (method, path, response.content[:300])


@pytest.mark.parametrize("path", ["/api/workflows/?payload=", "/api/workflows/?block=", "/api/blocks/?payload=",
                                  "/api/payloads/?block=", "/api/payloads/?workflow="])
def test_an_id_filter_beyond_64_bits_is_a_400_not_a_500(api, path):
    # Found by schemathesis: SQLite cannot bind the number (OverflowError).
    response = api.get(path + "27810309695412769914880")
    assert response.status_code == 400
    assert "less than or equal to" in json.dumps(response.json())
