"""Connectivity test for an endpoint: what works, what does not, and why.

Everything goes through llm/client.py (the pooled client, the concurrency limit, the same error
classification as real runs), so the test sees the endpoint the way a run would.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync

from llm import client
from llm.models import Endpoint

# The kinds a person is shown; the client's finer kinds map onto these.
ERROR_KINDS = {
    "dns": "dns", "refused": "refused", "tls": "tls", "auth": "auth", "timeout": "timeout",
    "bad_response": "bad_response", "connection": "refused",
}
PROBE_MESSAGES = [{"role": "user", "content": "Reply with the single word: ok"}]
PROBE_SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


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

    @property
    def ok(self) -> bool:
        required = {"reachable", "completion"}
        return all(check.ok for check in self.checks if check.name in required) and self.error is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint, "base_url": self.base_url, "model": self.model, "ok": self.ok,
            "error_kind": self.error_kind, "error": self.error,
            "checks": [dataclasses.asdict(check) for check in self.checks],
        }

    def fail(self, error: client.LLMError) -> None:
        if self.error is None:
            self.error_kind = ERROR_KINDS.get(error.kind, "bad_response" if error.http_status else error.kind)
            self.error = error.message


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


async def connectivity_test(config: client.EndpointConfig, *, model: str) -> ConnectivityReport:
    report = ConnectivityReport(endpoint=config.name, base_url=config.base_url, model=model)
    # One attempt per probe: the test reports what the server does, it does not wait out backoffs.
    probe = dataclasses.replace(config, max_retries=0)
    client.forget_capabilities(probe)

    started = time.perf_counter()
    try:
        models = await client.list_models(probe)
    except client.LLMError as exc:
        if exc.kind in ("dns", "refused", "tls", "connection", "timeout", "auth"):
            report.checks.append(Check("reachable", False, exc.message, _ms(started)))
            report.fail(exc)
            for name in ("model", "completion", "streaming", "stream_usage", "json_mode"):
                report.checks.append(Check(name, None, "skipped: the endpoint is not reachable"))
            return report
        # Some servers answer chat completions but have no models list.
        models = None
        report.checks.append(Check("reachable", True, f"the server answered, but listing models failed: {exc.message}",
                                   _ms(started)))
    else:
        report.checks.append(Check("reachable", True, f"listed {len(models)} models", _ms(started)))

    if models is None:
        report.checks.append(Check("model", None, "unknown: the models list is not available; see the completion check"))
    elif model in models:
        report.checks.append(Check("model", True, f"'{model}' is listed"))
    else:
        shown = ", ".join(models[:10]) + (", ..." if len(models) > 10 else "")
        report.checks.append(Check("model", False, f"model '{model}' is not listed by this endpoint (it lists: {shown or 'nothing'})"))

    started = time.perf_counter()
    try:
        answer = await client.complete(probe, model=model, messages=PROBE_MESSAGES, params={"max_tokens": 1})
    except client.LLMError as exc:
        report.checks.append(Check("completion", False, exc.message, _ms(started)))
        report.fail(exc)
        for name in ("streaming", "stream_usage", "json_mode"):
            report.checks.append(Check(name, None, "skipped: a plain completion failed"))
        return report
    report.checks.append(Check("completion", True, f"answered {answer.text[:40]!r} (finish: {answer.finish_reason or 'none'})",
                               _ms(started)))

    started = time.perf_counter()
    try:
        streamed = await client.complete(probe, model=model, messages=PROBE_MESSAGES, params={"max_tokens": 1}, stream=True)
    except client.LLMError as exc:
        report.checks.append(Check("streaming", False, exc.message, _ms(started)))
        report.checks.append(Check("stream_usage", None, "skipped: streaming failed"))
        report.fail(exc)
    else:
        ttft = f", first token after {streamed.ttft_ms} ms" if streamed.ttft_ms is not None else ""
        report.checks.append(Check("streaming", True, f"streamed {streamed.text[:40]!r}{ttft}", _ms(started)))
        caps = client.capabilities(probe)
        if not streamed.tokens_estimated:
            report.checks.append(Check("stream_usage", True, "usage comes back when streaming"))
        elif not caps["stream_options"]:
            report.checks.append(Check("stream_usage", False, "the server rejects stream_options; tokens of "
                                       "streamed answers will be counted locally (marked estimated)"))
        else:
            report.checks.append(Check("stream_usage", False, "no usage when streaming; tokens of streamed "
                                       "answers will be counted locally (marked estimated)"))

    started = time.perf_counter()
    try:
        await client.complete(probe, model=model, messages=PROBE_MESSAGES, params={"max_tokens": 1}, json_schema=PROBE_SCHEMA)
    except client.LLMError as exc:
        report.checks.append(Check("json_mode", False, exc.message, _ms(started)))
    else:
        mode = client.capabilities(probe)["response_format"]
        detail = {
            "json_schema": "response_format with a JSON schema is accepted",
            "json_object": "only response_format json_object is accepted (no schema); outputs are still validated",
            "none": "response_format is rejected; structured output relies on the prompt and validation",
        }[mode]
        report.checks.append(Check("json_mode", mode != "none", detail, _ms(started)))
    return report


async def _test_on_temporary_loop(config: client.EndpointConfig, model: str) -> ConnectivityReport:
    try:
        return await connectivity_test(config, model=model)
    finally:
        await client.aclose_all()  # this loop ends with the call: close its pooled client


def _in_server_thread() -> bool:
    """True in a sync view run by the ASGI server, where async_to_sync uses the server's own loop."""
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    return loop is not None and getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) == os.getpid()


def connectivity_test_sync(endpoint: Endpoint, *, model: str | None = None) -> ConnectivityReport:
    """For sync callers (the API view, the admin action)."""
    chosen = model or endpoint.default_model
    try:
        config = client.EndpointConfig.from_endpoint(endpoint)
    except ValueError as exc:  # the stored key was encrypted with a key this server no longer has
        report = ConnectivityReport(endpoint=endpoint.name, base_url=endpoint.base_url, model=chosen,
                                    error_kind="auth", error=f"{exc}; set the API key again")
        report.checks.append(Check("reachable", None, "skipped: the API key cannot be used"))
        return report
    if _in_server_thread():
        return async_to_sync(connectivity_test)(config, model=chosen)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_test_on_temporary_loop(config, chosen))
    return async_to_sync(_test_on_temporary_loop)(config, chosen)
