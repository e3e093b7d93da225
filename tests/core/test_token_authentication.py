"""Token authentication (core/authentication.py) answers as DRF's own does."""
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_a_valid_token_authenticates_its_user_with_their_permissions() -> None:
    User = get_user_model()
    viewer = User.objects.create_user("viewer", password="pw-for-tests-only")
    token = Token.objects.create(user=viewer)
    # No view permission yet: authenticated (403, not 401) but refused.
    assert token_client(token.key).get("/api/blocks/").status_code == 403
    viewer.user_permissions.add(*Permission.objects.filter(codename="view_block"))
    response = token_client(token.key).get("/api/blocks/")
    assert response.status_code == 200
    assert response.wsgi_request.user.pk == viewer.pk
    assert response.wsgi_request.auth.key == token.key and response.wsgi_request.auth.user == viewer


# Session authentication comes first, so DRF answers 403 rather than 401 (no WWW-Authenticate).
def test_an_unknown_token_is_refused_naming_the_problem() -> None:
    response = token_client("0" * 40).get("/api/blocks/")
    assert response.status_code == 403
    assert response.json()["detail"] == "Invalid token."


def test_the_token_of_an_inactive_user_is_refused() -> None:
    User = get_user_model()
    gone = User.objects.create_superuser("gone", "g@example.com", "pw-for-tests-only", is_active=False)
    response = token_client(Token.objects.create(user=gone).key).get("/api/blocks/")
    assert response.status_code == 403
    assert response.json()["detail"] == "User inactive or deleted."


def test_the_schema_still_documents_token_authentication(user_client) -> None:  # type: ignore[no-untyped-def]
    schema = user_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_a_token_is_looked_up_without_compiling_a_query_each_time(monkeypatch, user) -> None:  # type: ignore[no-untyped-def]
    from django.db.models.sql.compiler import SQLCompiler

    from core.authentication import TokenAuthentication

    key = Token.objects.create(user=user).key
    assert TokenAuthentication().authenticate_credentials(key)[0] == user  # compiled here, once per process
    compiled: list[str] = []
    original = SQLCompiler.as_sql
    monkeypatch.setattr(SQLCompiler, "as_sql", lambda self, *a, **k: compiled.append("sql") or original(self, *a, **k))
    authenticated, token = TokenAuthentication().authenticate_credentials(key)
    assert authenticated == user and authenticated.is_superuser and token.key == key
    assert compiled == []
