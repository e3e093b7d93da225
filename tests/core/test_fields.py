"""Compressed fields give back exactly what was stored, short values stay uncompressed, and every way
of reading (the ORM, values(), the engine's compiled reads, the API) sees the plain value."""
import pytest
from django.db import connection

from core.fields import COMPRESS_FROM, pack, unpack
from runs.models import Response
from tests.factories import make_chain, make_endpoint, make_run

pytestmark = pytest.mark.django_db

LONG = "You are a careful assistant. " * 60


def test_pack_compresses_long_values_only_and_unpacks_them():
    assert pack(b"short") == b"rshort" and unpack(pack(b"short")) == b"short"
    packed = pack(LONG.encode())
    assert packed[:1] == b"z" and len(packed) < len(LONG) / 5 and unpack(packed) == LONG.encode()
    assert len(LONG) >= COMPRESS_FROM


def test_a_response_reads_back_what_it_stored_and_the_column_holds_less():
    run = make_run(workflow=make_chain(make_endpoint()), workflow_name="w")
    messages = [{"role": "system", "content": LONG}, {"role": "user", "content": "Tides, é ✓"}]
    response = Response.objects.create(run=run, index=0, output_key="k", payload_name="p", status="succeeded",
                                       messages=messages, output=LONG + "ü")
    again = Response.objects.get(pk=response.pk)
    assert again.messages == messages and again.output == LONG + "ü"
    assert list(Response.objects.filter(pk=response.pk).values_list("messages", "output")) == [(messages, LONG + "ü")]
    with connection.cursor() as cursor:
        cursor.execute("SELECT length(messages), length(output) FROM runs_response WHERE id = %s", [response.pk])
        stored_messages, stored_output = cursor.fetchone()
    assert stored_messages < len(LONG) / 5 and stored_output < len(LONG) / 5


def test_the_api_shows_messages_as_a_list_and_output_as_text(api):
    run = make_run(workflow=make_chain(make_endpoint()), workflow_name="w", status="succeeded")
    Response.objects.create(run=run, index=0, output_key="outline", payload_name="p", status="succeeded",
                            messages=[{"role": "user", "content": LONG}], output="the text")
    body = api.get(f"/api/runs/{run.pk}/").json()
    assert body["responses"][0]["messages"] == [{"role": "user", "content": LONG}]
    assert body["responses"][0]["output"] == "the text"
