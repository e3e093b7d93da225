"""The connectivity test, over real HTTP to the fake server and to ports where nothing listens."""
import logging
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.factories import make_endpoint, make_payload
from tests.fake_llm import FakeLLM, free_port
from tests.llm.conftest import PLANTED_KEY

pytestmark = pytest.mark.django_db


def checks_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in report["checks"]}


def test_a_healthy_endpoint_passes_every_check(api: APIClient, fake_llm: FakeLLM) -> None:
    endpoint = make_endpoint(fake_llm.base_url)
    response = api.post(f"/api/endpoints/{endpoint.pk}/test/", {}, format="json")
    assert response.status_code == 200, response.data
    report = response.data
    assert report["ok"] is True
    assert report["error"] is None
    checks = checks_of(report)
    assert list(checks) == ["reachable", "model", "completion", "streaming", "stream_usage", "structured_output"]
    assert all(check["ok"] for check in checks.values()), checks
    for check in report["checks"]:
        assert set(check) == {"name", "ok", "detail", "latency_ms"}
    assert isinstance(checks["reachable"]["latency_ms"], int)
    # One token asked for on each plain probe; the structured one needs room for its JSON.
    assert [body.get("max_tokens") for body in fake_llm.stats()["recent"]] == [1, 1, 50]
    assert checks["structured_output"]["detail"] == "json_schema: the server enforces the schema; the answer fits the schema"
    assert report["learned"] == {}


def test_a_model_the_endpoint_does_not_list_is_reported(api: APIClient, fake_llm: FakeLLM) -> None:
    endpoint = make_endpoint(fake_llm.base_url)
    report = api.post(f"/api/endpoints/{endpoint.pk}/test/", {"model": "gpt-nope"}, format="json").data
    checks = checks_of(report)
    assert report["model"] == "gpt-nope"
    assert checks["model"]["ok"] is False
    assert "gpt-nope" in checks["model"]["detail"] and "gpt-4o-mini" in checks["model"]["detail"]
    assert checks["completion"]["ok"] is False
    assert "model 'gpt-nope' does not exist on this endpoint" in checks["completion"]["detail"]
    assert report["ok"] is False


def test_an_unknown_field_in_the_test_body_is_a_400(api: APIClient, fake_llm: FakeLLM) -> None:
    endpoint = make_endpoint(fake_llm.base_url)
    response = api.post(f"/api/endpoints/{endpoint.pk}/test/", {"modle": "x"}, format="json")
    assert response.status_code == 400
    assert "modle" in response.data


def test_a_wrong_key_is_classified_as_auth(api: APIClient, fake_llm: FakeLLM) -> None:
    fake_llm.control(api_key="sk-the-right-one-123")
    endpoint = make_endpoint(fake_llm.base_url, api_key="sk-the-wrong-one-456")
    report = api.post(f"/api/endpoints/{endpoint.pk}/test/").data
    assert report["ok"] is False
    assert report["error_kind"] == "auth"
    assert "the endpoint refused the API key" in report["error"]
    assert checks_of(report)["reachable"]["ok"] is False
    assert checks_of(report)["completion"]["ok"] is None  # skipped


def test_a_port_where_nothing_listens_is_classified_as_refused(api: APIClient) -> None:
    endpoint = make_endpoint(f"http://127.0.0.1:{free_port()}/v1", max_retries=0)
    report = api.post(f"/api/endpoints/{endpoint.pk}/test/").data
    assert report["error_kind"] == "refused"
    assert "refused" in report["error"]
    assert checks_of(report)["reachable"]["ok"] is False


def test_an_unresolvable_host_is_classified_as_dns(api: APIClient) -> None:
    endpoint = make_endpoint("http://no-such-host.invalid/v1", max_retries=0)
    report = api.post(f"/api/endpoints/{endpoint.pk}/test/").data
    assert report["error_kind"] == "dns"
    assert "DNS" in report["error"]


def test_a_server_that_hangs_is_classified_as_timeout(api: APIClient, fake_llm: FakeLLM) -> None:
    endpoint = make_endpoint(fake_llm.base_url, timeout_seconds=0.5)
    fake_llm.fail_next({"hang": True})
    report = api.post(f"/api/endpoints/{endpoint.pk}/test/").data
    assert report["error_kind"] == "timeout"
    assert checks_of(report)["completion"]["ok"] is False
    assert "did not answer within 0.5 s" in checks_of(report)["completion"]["detail"]


def test_an_html_answer_is_classified_as_bad_response(api: APIClient, fake_llm: FakeLLM) -> None:
    endpoint = make_endpoint(fake_llm.base_url)
    fake_llm.fail_next({"html": True})
    report = api.post(f"/api/endpoints/{endpoint.pk}/test/").data
    assert report["error_kind"] == "bad_response"
    assert "text/html" in report["error"]


def test_missing_stream_usage_and_rejected_options_are_reported_not_fatal(api: APIClient, fake_llm: FakeLLM) -> None:
    fake_llm.control(reject_stream_options=True, reject_response_format=True)
    endpoint = make_endpoint(fake_llm.base_url)
    report = api.post(f"/api/endpoints/{endpoint.pk}/test/").data
    checks = checks_of(report)
    assert report["ok"] is True
    assert checks["streaming"]["ok"] is True
    assert checks["stream_usage"]["ok"] is False
    assert "stream_options" in checks["stream_usage"]["detail"]
    # Every response_format is refused: the schema goes in the prompt, which the fake follows.
    assert checks["structured_output"]["ok"] is True
    assert checks["structured_output"]["detail"] == ("instructions in the prompt: checked against the schema here, "
                                                     "retried; the answer fits the schema")
    assert report["learned"] == {"stream_options": False, "stream_usage": False, "structured_output": "prompt"}


def test_structured_output_is_required_once_a_payload_on_the_endpoint_uses_a_schema(
    api: APIClient, fake_llm: FakeLLM
) -> None:
    fake_llm.control(reject_response_format=True)
    endpoint = make_endpoint(fake_llm.base_url)
    assert api.post(f"/api/endpoints/{endpoint.pk}/test/").data["ok"] is True
    make_payload("structured", endpoint, [], json_schema={"type": "object"})
    fake_llm.fail_next({}, {}, {"content": "Sure! Here is your JSON."})  # the third probe is the structured one
    report = api.post(f"/api/endpoints/{endpoint.pk}/test/").data
    assert "the answer does not fit the schema" in checks_of(report)["structured_output"]["detail"]
    assert report["structured_required"] is True
    assert report["ok"] is False


def test_a_server_without_stream_usage_is_reported(api: APIClient, fake_llm: FakeLLM) -> None:
    fake_llm.control(no_stream_usage=True)
    endpoint = make_endpoint(fake_llm.base_url)
    checks = checks_of(api.post(f"/api/endpoints/{endpoint.pk}/test/").data)
    assert checks["stream_usage"]["ok"] is False
    assert "no usage when streaming" in checks["stream_usage"]["detail"]


def test_json_object_only_servers_are_reported(api: APIClient, fake_llm: FakeLLM) -> None:
    # A server that takes json_object but not json_schema: the structured probe gets a 400 naming json_schema.
    endpoint = make_endpoint(fake_llm.base_url)
    fake_llm.fail_next({}, {}, {"status": 400, "message": "json_schema is not supported, use json_object"})
    report = api.post(f"/api/endpoints/{endpoint.pk}/test/").data
    checks = checks_of(report)
    assert checks["structured_output"]["detail"].startswith("json_object with schema: grammar-constrained")
    assert report["learned"] == {"structured_output": "json_object_schema"}
    stored = endpoint.capabilities.get(model=endpoint.default_model)
    assert stored.structured_output == "json_object_schema"
    assert "json_schema is not supported" in stored.evidence["structured_output"]["said"]


def test_the_api_key_never_appears_in_responses_reports_or_logs(
    api: APIClient, fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created = api.post("/api/endpoints/", {"name": "planted", "base_url": fake_llm.base_url,
                                           "api_key": PLANTED_KEY, "default_model": "gpt-4o-mini"}, format="json")
    endpoint_id = created.data["id"]
    seen = [created.content.decode(), api.get("/api/endpoints/").content.decode(),
            api.get(f"/api/endpoints/{endpoint_id}/").content.decode(),
            api.patch(f"/api/endpoints/{endpoint_id}/", {"enabled": True}, format="json").content.decode(),
            api.options("/api/endpoints/").content.decode()]
    # A healthy test, then one the server refuses with a message that echoes the (masked) key.
    seen.append(api.post(f"/api/endpoints/{endpoint_id}/test/").content.decode())
    fake_llm.control(api_key="sk-something-else-000", echo_key_on_401=True)
    refused = api.post(f"/api/endpoints/{endpoint_id}/test/")
    assert refused.data["error_kind"] == "auth"
    seen.append(refused.content.decode())
    seen.append(caplog.text)
    seen.extend(str(record.args) for record in caplog.records)
    # The key must have been sent, or this test proves nothing.
    assert fake_llm.stats()["requests"] > 0
    # The whole key, and the ends a server shows when it masks the middle.
    fragments = [PLANTED_KEY, PLANTED_KEY[:8], PLANTED_KEY[-4:]]
    for text in seen:
        for fragment in fragments:
            assert fragment not in text


def test_a_key_that_cannot_be_decrypted_is_reported_not_a_500(api: APIClient) -> None:
    endpoint = make_endpoint()
    endpoint.api_key_encrypted = "gAAAAA-not-a-valid-token"
    endpoint.save()
    response = api.post(f"/api/endpoints/{endpoint.pk}/test/")
    assert response.status_code == 200
    assert response.data["ok"] is False
    assert "cannot be decrypted" in response.data["error"]
