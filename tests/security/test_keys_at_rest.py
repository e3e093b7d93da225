"""API keys are encrypted at rest, and `manage.py rotate_api_keys` moves them to the newest key."""
import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from llm import crypto
from llm.models import Endpoint
from tests.factories import make_endpoint

pytestmark = pytest.mark.django_db

KEY = "sk-live-at-rest-0123456789abcdef"


@pytest.fixture(autouse=True)
def _fresh_cipher():
    crypto.reset()
    yield
    crypto.reset()


def stored_column(endpoint: Endpoint) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key_encrypted FROM llm_endpoint WHERE id = %s", [endpoint.pk])
        return cursor.fetchone()[0]


def test_the_database_holds_the_key_encrypted():
    endpoint = make_endpoint(api_key=KEY)
    stored = stored_column(endpoint)
    assert stored and KEY not in stored and "0123456789abcdef" not in stored
    assert Endpoint.objects.get(pk=endpoint.pk).api_key == KEY


def test_rotation_re_encrypts_every_key_with_the_newest_key():
    with override_settings(FIELD_ENCRYPTION_KEY="old-key"):
        crypto.reset()
        endpoint = make_endpoint(api_key=KEY)
        make_endpoint(name="keyless", api_key="")
        before = stored_column(endpoint)
    with override_settings(FIELD_ENCRYPTION_KEY="new-key,old-key"):
        crypto.reset()
        call_command("rotate_api_keys", stdout=(out := io.StringIO()))
        assert "Re-encrypted 1 API key(s)" in out.getvalue()
    assert stored_column(endpoint) != before
    with override_settings(FIELD_ENCRYPTION_KEY="new-key"):
        crypto.reset()  # the old key is gone: only the new one can read what rotation wrote
        assert Endpoint.objects.get(pk=endpoint.pk).api_key == KEY
        assert Endpoint.objects.get(name="keyless").api_key == ""


def test_rotation_changes_nothing_when_a_key_cannot_be_read():
    with override_settings(FIELD_ENCRYPTION_KEY="lost-key"):
        crypto.reset()
        lost = make_endpoint(name="lost", api_key=KEY)
    with override_settings(FIELD_ENCRYPTION_KEY="new-key,old-key"):
        crypto.reset()
        readable = make_endpoint(name="readable", api_key=KEY)
        readable_before = stored_column(readable)
        with pytest.raises(CommandError, match=r"lost.*FIELD_ENCRYPTION_KEY.*Nothing was changed"):
            call_command("rotate_api_keys")
    assert stored_column(readable) == readable_before
    assert stored_column(lost) != ""
