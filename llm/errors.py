"""LLMError, and how an SDK or transport failure becomes one a person understands.

`retryable` says whether trying again later could help; `kind` names the failure for pages and
records (docs/reliability.md). A new kind of failure is one more branch in `classify`.
"""
from __future__ import annotations

import email.utils
import json
import re
import socket
import ssl
import time
from typing import Any

import openai

from llm import egress


class LLMError(Exception):
    """A call that failed. `retryable` says whether trying again later could help."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        kind: str = "error",
        http_status: int | None = None,
        retry_after: float | None = None,
        attempts: list[dict[str, Any]] | None = None,
        partial_text: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.kind = kind
        self.http_status = http_status
        self.retry_after = retry_after
        self.attempts = attempts or []
        self.partial_text = partial_text



# --- errors -------------------------------------------------------------------------------------
# Servers echo (partly masked) keys in 401 messages, e.g. "Incorrect API key provided: sk-ab***yz".
_KEY_LIKE = re.compile(r"\b(sk|key|api[-_]?key)[-_][A-Za-z0-9*_\-]{4,}", re.IGNORECASE)


def redact(message: str, api_key: str = "") -> str:
    """Remove the API key (and anything shaped like one) from a message meant for people or logs."""
    if api_key:
        message = message.replace(api_key, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", message)


def retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return float(raw_ms) / 1000
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None  # unparseable: fall back to our own backoff
    return max(0.0, parsed.timestamp() - time.time())


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    text = (exc.response.text or "").strip() if exc.response is not None else ""
    return text[:300] or exc.message


def _egress_refusal(exc: BaseException) -> egress.EgressRefused | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, egress.EgressRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _connection_kind(exc: BaseException) -> tuple[str, str] | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return "dns", "the host name could not be resolved (DNS)"
        if isinstance(seen, ConnectionRefusedError):
            return "refused", "the connection was refused (is the server running on that port?)"
        if isinstance(seen, ssl.SSLError):
            return "tls", f"the TLS handshake failed: {seen}"
        text = str(seen)
        if "Name or service not known" in text or "nodename nor servname" in text or "Temporary failure in name" in text:
            return "dns", "the host name could not be resolved (DNS)"
        if "Connect call failed" in text or "Connection refused" in text:
            return "refused", "the connection was refused (is the server running on that port?)"
        if "SSL" in text or "certificate" in text:
            return "tls", f"the TLS handshake failed: {text}"
        seen = seen.__cause__ or seen.__context__
    return None


def classify(exc: BaseException, *, model: str, timeout: float) -> LLMError:
    """Turn an SDK or transport exception into an LLMError a person understands."""
    if isinstance(exc, LLMError):
        return exc
    refused = _egress_refusal(exc)
    if refused is not None:
        return LLMError(f"the endpoint URL is not allowed: {refused}", retryable=False, kind="forbidden_address")
    if isinstance(exc, openai.APIConnectionError):
        return _connection_error(exc, timeout)
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc, model)
    if isinstance(exc, openai.APIResponseValidationError | json.JSONDecodeError | ValueError | TypeError | AttributeError):
        return LLMError(f"the endpoint sent a response that is not a chat completion: {exc}",
                        retryable=False, kind="bad_response")
    return LLMError(f"the response was cut off: {type(exc).__name__}: {exc}", retryable=True, kind="bad_response")


def _connection_error(exc: openai.APIConnectionError, timeout: float) -> LLMError:
    # The aiohttp transport reports refused connections and DNS failures as connect *timeouts*,
    # so the cause chain decides before the exception's class does.
    found = _connection_kind(exc)
    if found is not None:
        kind, message = found
        return LLMError(message, retryable=kind != "tls", kind=kind)
    if isinstance(exc, openai.APITimeoutError):
        return LLMError(f"the endpoint did not answer within {timeout:g} s", retryable=True, kind="timeout")
    return LLMError(f"the connection failed: {exc}", retryable=True, kind="connection")


def _status_error(exc: openai.APIStatusError, model: str) -> LLMError:
    status = exc.status_code
    detail = _server_message(exc)
    if 300 <= status < 400:
        target = exc.response.headers.get("location", "") if exc.response is not None else ""
        return LLMError(f"the endpoint answered HTTP {status}, a redirect to {target[:200] or 'elsewhere'}; "
                        "redirects are not followed: set the base URL to where the API answers",
                        retryable=False, kind="redirect", http_status=status)
    if status in (401, 403):
        return LLMError(f"the endpoint refused the API key (HTTP {status}: {detail})",
                        retryable=False, kind="auth", http_status=status)
    if status == 404:
        return LLMError(f"model '{model}' does not exist on this endpoint (HTTP 404: {detail})",
                        retryable=False, kind="model_not_found", http_status=status)
    if status == 429 or status >= 500 or status in (408, 409):
        return LLMError(f"HTTP {status}: {detail}", retryable=True, kind="rate_limited" if status == 429 else "server",
                        http_status=status, retry_after=retry_after(exc.response.headers))
    return LLMError(f"the endpoint rejected the request (HTTP {status}: {detail})",
                    retryable=False, kind="bad_request", http_status=status)
