"""Lists answer in a number of queries that does not grow with what they list."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from blocks.services import block_create
from payloads.services import payload_create
from tests.factories import make_endpoint
from workflows.services import workflow_create

pytestmark = pytest.mark.django_db

LISTS = ["/api/workflows/", "/api/payloads/", "/api/blocks/", "/workflows/", "/payloads/", "/blocks/"]


def add_workflows(endpoint, start: int, count: int) -> None:
    for n in range(start, start + count):
        block = block_create(name=f"b{n}", content="About {{ topic }} and {{ missing }}.")
        payload = payload_create(name=f"p{n}", endpoint=endpoint, blocks=[{"block": block, "role": "user"}])
        workflow_create(name=f"w{n}", inputs=[{"name": "topic"}], steps=[{"payload": payload, "output_key": "out"}])


def queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize("url", LISTS)
def test_a_list_takes_as_many_queries_for_twelve_objects_as_for_two(admin_client, url):
    endpoint = make_endpoint()
    add_workflows(endpoint, 0, 2)
    few = queries(admin_client, url)
    add_workflows(endpoint, 2, 10)
    assert queries(admin_client, url) == few
