"""Cross-cutting API guarantees: who may call what, body limits, the OpenAPI schema, migrations."""
import io
import re
import uuid

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from blocks.models import Block
from payloads.models import Payload
from tests.factories import make_workflow
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

# The only pages an anonymous visitor may get a normal answer from: health and the log-in/log-out pages.
# Everything else must refuse (401/403) or redirect to a login page.
PUBLIC_PATHS = {"/healthz", "/accounts/login/", "/accounts/logout/", "/admin/login/", "/admin/logout/", "/api/auth/login/", "/api/auth/logout/"}
LOGIN_PAGES = ("/admin/login/", "/api/auth/login/", settings.LOGIN_URL)

# By the converter's registered name, as written in a route: <int:pk>, <drf_format_suffix:format>.
SAMPLE_BY_CONVERTER = {"int": "1", "id": "1", "str": "x", "slug": "x", "path": "x", "uuid": str(uuid.UUID(int=1)),
                       "drf_format_suffix": ".json"}
NAMED_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<body>[^)]*)\)")
ROUTE_PARAM = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")


def _sample_from_regex(regex: str) -> str:
    def group_sample(match: re.Match[str]) -> str:
        name, body = match["name"], match["body"]
        if name == "format":
            return "json"
        if "|" in body and "[" not in body:
            return body.split("|")[0]  # an alternation of literals, e.g. admin's app labels
        return "1"

    text = NAMED_GROUP.sub(group_sample, regex)
    return text.replace("^", "").replace("$", "").replace("\\Z", "").replace("/?", "/").replace("\\.", ".")


def _sample(pattern: URLPattern | URLResolver) -> str:
    if hasattr(pattern.pattern, "_route"):
        return ROUTE_PARAM.sub(lambda m: SAMPLE_BY_CONVERTER[m["converter"] or "str"], pattern.pattern._route)
    return _sample_from_regex(pattern.pattern.regex.pattern)


def every_url(patterns=None, prefix="/"):  # type: ignore[no-untyped-def]
    """A concrete path for every URL pattern of the project, found by walking the resolver."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        path = prefix + _sample(pattern)
        if isinstance(pattern, URLResolver):
            yield from every_url(pattern.url_patterns, path)
        else:
            yield path, pattern


def test_url_walker_reaches_every_pattern_with_a_path_that_resolves_to_it():
    urls = list(every_url())
    assert len(urls) > 50  # admin alone has dozens: a walker that finds few is broken
    for path, pattern in urls:
        assert resolve(path).func == pattern.callback, f"sample {path} does not resolve to {pattern}"
    paths = {path for path, _ in urls}
    assert {"/api/blocks/", "/api/payloads/1/preview/", "/api/workflows/1/validate/", "/api/schema/",
            "/api/docs/", "/admin/", "/healthz"} <= paths


@pytest.mark.parametrize("method", ["get", "post"])
def test_every_url_refuses_anonymous_visitors_except_the_allow_list(method):
    client = Client()
    allowed_public = set()
    for path, _pattern in every_url():
        if path.startswith(f"/{settings.STATIC_URL.strip('/')}/"):
            continue  # stylesheets and scripts, served without login by design (DEBUG only here)
        response = getattr(client, method)(path)
        if path in PUBLIC_PATHS:
            allowed_public.add(path)
            continue
        if response.status_code == 302:
            assert response["Location"].startswith(LOGIN_PAGES), f"{method} {path} redirects to {response['Location']}"
        else:
            assert response.status_code in (401, 403), f"anonymous {method} {path} got {response.status_code}"
    assert allowed_public == PUBLIC_PATHS


def test_healthz_is_public():
    assert Client().get("/healthz").status_code == 200


def test_token_from_drf_create_token_authenticates_api_calls(user):
    out = io.StringIO()
    call_command("drf_create_token", "admin", stdout=out)
    key = Token.objects.get(user=user).key
    assert key in out.getvalue()
    client = APIClient()
    assert client.get("/api/blocks/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    refused = client.get("/api/blocks/", HTTP_AUTHORIZATION="Token not-a-real-key")
    # 403 rather than 401: session auth comes first and sends no WWW-Authenticate challenge.
    assert refused.status_code in (401, 403)
    assert refused.json()["detail"] == "Invalid token."
    assert client.get("/api/blocks/").status_code in (401, 403)


@pytest.fixture
def plain_user(django_user_model):  # type: ignore[no-untyped-def]
    return django_user_model.objects.create_user("viewer", password="pw-for-tests-only")


def _as(user):  # type: ignore[no-untyped-def]
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_user_without_model_permissions_gets_403_everywhere(plain_user, outline_payload, topic_block):
    workflow = make_workflow("article", [("outline", outline_payload)])
    client = _as(plain_user)
    calls = [
        ("get", "/api/blocks/", None), ("get", f"/api/blocks/{topic_block.pk}/", None),
        ("post", "/api/blocks/", {"name": "b", "content": "x"}),
        ("patch", f"/api/blocks/{topic_block.pk}/", {"name": "renamed"}),
        ("delete", f"/api/blocks/{topic_block.pk}/", None),
        ("get", "/api/payloads/", None), ("post", f"/api/payloads/{outline_payload.pk}/preview/", {"variables": {}}),
        ("delete", f"/api/payloads/{outline_payload.pk}/", None),
        ("get", "/api/workflows/", None), ("get", f"/api/workflows/{workflow.pk}/validate/", None),
        ("put", f"/api/workflows/{workflow.pk}/", {"name": "renamed"}),
        ("delete", f"/api/workflows/{workflow.pk}/", None),
    ]
    for method, path, body in calls:
        assert getattr(client, method)(path, body, format="json").status_code == 403, f"{method} {path}"
    assert Block.objects.filter(name="outline-task").exists()
    assert Payload.objects.filter(pk=outline_payload.pk).exists()
    assert Workflow.objects.filter(name="article").exists()


def test_view_permission_allows_reading_and_preview_but_not_writing(plain_user, outline_payload):
    plain_user.user_permissions.add(Permission.objects.get(codename="view_payload"))
    client = _as(plain_user)
    assert client.get("/api/payloads/").status_code == 200
    assert client.post(f"/api/payloads/{outline_payload.pk}/preview/", {"variables": {"topic": "owls"}},
                       format="json").status_code == 200
    assert client.patch(f"/api/payloads/{outline_payload.pk}/", {"name": "x"}, format="json").status_code == 403
    assert client.get("/api/blocks/").status_code == 403


@pytest.mark.parametrize("path", ["/api/blocks/", "/api/payloads/", "/api/workflows/"])
def test_oversized_body_is_a_clean_413_and_changes_nothing(api, path):
    oversized = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = api.post(path, {"name": "big", "content": oversized, "description": oversized}, format="json")
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE) in response.json()["detail"]
    assert not (Block.objects.exists() or Payload.objects.exists() or Workflow.objects.exists())


def test_malformed_json_is_a_400(api):
    response = api.post("/api/blocks/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def _schema_problems() -> tuple[dict, list[str]]:
    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)  # raises on an OpenAPI 3 violation
    problems = [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
    GENERATOR_STATS.reset()
    return schema, problems


def test_openapi_schema_of_the_whole_project_generates_without_warnings_or_errors():
    _schema, problems = _schema_problems()
    assert problems == []


def test_openapi_schema_describes_preview_and_validate():
    schema, _problems = _schema_problems()
    preview = schema["paths"]["/api/payloads/{id}/preview/"]["post"]
    assert preview["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("PayloadPreviewInputRequest")
    assert preview["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/PayloadPreview")
    assert "400" in preview["responses"]
    validate = schema["paths"]["/api/workflows/{id}/validate/"]["get"]
    assert validate["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "WorkflowValidation")
    payload_fields = schema["components"]["schemas"]["Payload"]["properties"]
    assert {"blocks", "variables", "used_by", "temperature", "endpoint"} <= set(payload_fields)
    list_params = {p["name"] for p in schema["paths"]["/api/blocks/"]["get"]["parameters"]}
    assert {"search", "ordering", "page", "name", "used"} <= list_params


def test_api_schema_and_docs_are_served_to_logged_in_users(api):
    assert api.get("/api/schema/").status_code == 200
    assert api.get("/api/docs/").status_code == 200


def test_models_and_migrations_agree():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)  # exits non-zero when a migration is missing
