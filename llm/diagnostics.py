"""Connectivity test for an endpoint: what works, what does not, and why.

Everything goes through llm/client.py (the pooled client, the concurrency limit, the same error
classification as real runs), so the test sees the endpoint the way a run would.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from jsonschema import Draft202012Validator

from core.internals.asgiref_loop import server_event_loop
from llm import client, selectors, services
from llm.capabilities import STANDARD, STRUCTURED_LABELS
from llm.models import Endpoint

# The kinds a person is shown; the client's finer kinds map onto these.
ERROR_KINDS = {
    "dns": "dns", "refused": "refused", "tls": "tls", "auth": "auth", "timeout": "timeout",
    "bad_response": "bad_response", "connection": "refused",
}
PROBE_MESSAGES = [{"role": "user", "content": "Reply with the single word: ok"}]
PROBE_SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
STRUCTURED_MESSAGES = [{"role": "user", "content": 'Reply with the JSON object {"ok": true}'}]


@dataclass
class Check:
    name: str
    ok: bool | None  # None: not run (an earlier check failed) or not knowable
    detail: str
    latency_ms: int | None = None


@dataclass
class ConnectivityReport:
    endpoint: str
    base_url: str
    model: str
    checks: list[Check] = field(default_factory=list)
    error_kind: str | None = None
    error: str | None = None
    # Required when a payload on the endpoint asks for JSON valid against a schema.
    structured_required: bool = False
    capabilities: dict[str, Any] = field(default_factory=dict)
    # What the probes found out (capability -> value, and what the server said): the caller stores it.
    learned: dict[str, Any] = field(default_factory=dict)
    learned_evidence: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        required = {"reachable", "completion", *(("structured_output",) if self.structured_required else ())}
        return all(check.ok for check in self.checks if check.name in required) and self.error is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint, "base_url": self.base_url, "model": self.model, "ok": self.ok,
            "error_kind": self.error_kind, "error": self.error, "structured_required": self.structured_required,
            "checks": [dataclasses.asdict(check) for check in self.checks], "capabilities": self.capabilities,
            "learned": self.learned,
        }

    def fail(self, error: client.LLMError) -> None:
        if self.error is None:
            self.error_kind = ERROR_KINDS.get(error.kind, "bad_response" if error.http_status else error.kind)
            self.error = error.message


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


async def connectivity_test(config: client.EndpointConfig, *, model: str,
                            structured_required: bool = False) -> ConnectivityReport:
    """Probe the endpoint as runs use it; what the server turns out to accept for `model` is in
    `report.learned`. Give it a config loaded after learned values were forgotten (see relearn)."""
    report = ConnectivityReport(endpoint=config.name, base_url=config.base_url, model=model,
                                structured_required=structured_required)
    client.forget_capabilities(config, model)
    # One attempt per probe: the test reports what the server does, it does not wait out backoffs.
    probe = dataclasses.replace(config, max_retries=0)
    await _probe(probe, model, report)
    caps = client.capabilities(probe, model)
    report.capabilities = dataclasses.asdict(caps)
    standard = config.capabilities.get(model, STANDARD)
    report.learned = {name: value for name, value in report.capabilities.items() if getattr(standard, name) != value}
    return report


def _store(report: ConnectivityReport, endpoint: Endpoint) -> None:
    if report.learned:
        services.capability_learn(endpoint_id=endpoint.pk, model=report.model, changes=report.learned,
                                  evidence=report.learned_evidence)


def _relearn_config(endpoint: Endpoint, model: str) -> client.EndpointConfig:
    """The endpoint's config with what was learned about `model` forgotten (a person's settings kept)."""
    services.capability_forget_learned(endpoint_id=endpoint.pk, model=model)
    return selectors.endpoint_config(endpoint)


async def aconnectivity_test(endpoint: Endpoint, *, model: str | None = None) -> ConnectivityReport:
    """For async views: re-learn, probe, and store what was learned."""
    chosen = model or endpoint.default_model
    config = await sync_to_async(_relearn_config)(endpoint, chosen)
    structured = await sync_to_async(selectors.endpoint_needs_structured_output)(endpoint.pk)
    report = await connectivity_test(config, model=chosen, structured_required=structured)
    await sync_to_async(_store)(report, endpoint)
    return report


async def _probe(probe: client.EndpointConfig, model: str, report: ConnectivityReport) -> None:
    """Each check in turn; a failure that makes the later ones meaningless marks them skipped."""
    reachable, models = await _reachable(probe, report)
    if not reachable:
        return
    report.checks.append(_model_check(model, models))
    if not await _completion_check(probe, model, report):
        return
    await _streaming_checks(probe, model, report)
    report.checks.append(await _structured_check(probe, model, report))


def _skip(report: ConnectivityReport, names: tuple[str, ...], why: str) -> None:
    report.checks.extend(Check(name, None, f"skipped: {why}") for name in names)


async def _reachable(probe: client.EndpointConfig, report: ConnectivityReport) -> tuple[bool, list[str] | None]:
    started = time.perf_counter()
    try:
        models = await client.list_models(probe)
    except client.LLMError as exc:
        if exc.kind in ("dns", "refused", "tls", "connection", "timeout", "auth"):
            report.checks.append(Check("reachable", False, exc.message, _ms(started)))
            report.fail(exc)
            _skip(report, ("model", "completion", "streaming", "stream_usage", "structured_output"),
                  "the endpoint is not reachable")
            return False, None
        # Some servers answer chat completions but have no models list.
        report.checks.append(Check("reachable", True, f"the server answered, but listing models failed: {exc.message}",
                                   _ms(started)))
        return True, None
    report.checks.append(Check("reachable", True, f"listed {len(models)} models", _ms(started)))
    return True, models


def _model_check(model: str, models: list[str] | None) -> Check:
    if models is None:
        return Check("model", None, "unknown: the models list is not available; see the completion check")
    if model in models:
        return Check("model", True, f"'{model}' is listed")
    shown = ", ".join(models[:10]) + (", ..." if len(models) > 10 else "")
    return Check("model", False, f"model '{model}' is not listed by this endpoint (it lists: {shown or 'nothing'})")


async def _completion_check(probe: client.EndpointConfig, model: str, report: ConnectivityReport) -> bool:
    started = time.perf_counter()
    try:
        answer = await client.complete(probe, model=model, messages=PROBE_MESSAGES, params={"max_tokens": 1})
    except client.LLMError as exc:
        report.checks.append(Check("completion", False, exc.message, _ms(started)))
        report.fail(exc)
        _skip(report, ("streaming", "stream_usage", "structured_output"), "a plain completion failed")
        return False
    report.learned_evidence.update(answer.learned_evidence)
    report.checks.append(Check("completion", True, f"answered {answer.text[:40]!r} (finish: {answer.finish_reason or 'none'})",
                               _ms(started)))
    return True


async def _streaming_checks(probe: client.EndpointConfig, model: str, report: ConnectivityReport) -> None:
    started = time.perf_counter()
    try:
        streamed = await client.complete(probe, model=model, messages=PROBE_MESSAGES, params={"max_tokens": 1}, stream=True)
    except client.LLMError as exc:
        report.checks.append(Check("streaming", False, exc.message, _ms(started)))
        report.checks.append(Check("stream_usage", None, "skipped: streaming failed"))
        report.fail(exc)
        return
    report.learned_evidence.update(streamed.learned_evidence)
    ttft = f", first token after {streamed.ttft_ms} ms" if streamed.ttft_ms is not None else ""
    report.checks.append(Check("streaming", True, f"streamed {streamed.text[:40]!r}{ttft}", _ms(started)))
    if not streamed.tokens_estimated:
        report.checks.append(Check("stream_usage", True, "usage comes back when streaming"))
    elif not client.capabilities(probe, model).stream_options:
        report.checks.append(Check("stream_usage", False, "the server rejects stream_options; tokens of "
                                   "streamed answers will be counted locally (marked estimated)"))
    else:
        report.checks.append(Check("stream_usage", False, "no usage when streaming; tokens of streamed "
                                   "answers will be counted locally (marked estimated)"))


async def _structured_check(probe: client.EndpointConfig, model: str, report: ConnectivityReport) -> Check:
    """Structured output in the best dialect the server accepts, and whether the answer fits the schema."""
    started = time.perf_counter()
    try:
        answer = await client.complete(probe, model=model, messages=STRUCTURED_MESSAGES, params={"max_tokens": 50},
                                       json_schema=PROBE_SCHEMA)
    except client.LLMError as exc:
        return Check("structured_output", False, exc.message, _ms(started))
    report.learned_evidence.update(answer.learned_evidence)
    dialect = client.capabilities(probe, model).structured_output
    found = STRUCTURED_LABELS[dialect]
    try:
        problem = next((e.message for e in Draft202012Validator(PROBE_SCHEMA).iter_errors(json.loads(answer.text))), None)
    except json.JSONDecodeError as exc:
        problem = f"the answer is not JSON ({exc.msg})"
    if problem:
        return Check("structured_output", False, f"{found}; but the answer does not fit the schema: {problem}",
                     _ms(started))
    return Check("structured_output", True, f"{found}; the answer fits the schema", _ms(started))


async def _test_on_temporary_loop(config: client.EndpointConfig, model: str, structured_required: bool) -> ConnectivityReport:
    try:
        return await connectivity_test(config, model=model, structured_required=structured_required)
    finally:
        await client.aclose_all()  # this loop ends with the call: close its pooled client


def _in_server_thread() -> bool:
    """True in a sync view run by the ASGI server, where async_to_sync uses the server's own loop."""
    return server_event_loop() is not None


def connectivity_test_sync(endpoint: Endpoint, *, model: str | None = None) -> ConnectivityReport:
    """For sync callers (the API view, the admin action)."""
    chosen = model or endpoint.default_model
    try:
        config = _relearn_config(endpoint, chosen)
    except ValueError as exc:  # the stored key was encrypted with a key this server no longer has
        report = ConnectivityReport(endpoint=endpoint.name, base_url=endpoint.base_url, model=chosen,
                                    error_kind="auth", error=f"{exc}; set the API key again")
        report.checks.append(Check("reachable", None, "skipped: the API key cannot be used"))
        return report
    structured = selectors.endpoint_needs_structured_output(endpoint.pk)
    if _in_server_thread():
        report = async_to_sync(connectivity_test)(config, model=chosen, structured_required=structured)
    else:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            report = asyncio.run(_test_on_temporary_loop(config, chosen, structured))
        else:
            report = async_to_sync(_test_on_temporary_loop)(config, chosen, structured)
    _store(report, endpoint)
    return report
