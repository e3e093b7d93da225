"""The one place that talks to LLMs: chat completions over openai.AsyncOpenAI.

The rest of the code sees `complete()`, `Completion` and `LLMError`. We do our own retries (the
SDK's are off) so that every attempt is recorded and `Retry-After` is honoured, and we remember
per endpoint and model what its server accepts (llm/capabilities.py) instead of failing.
"""
from __future__ import annotations

import asyncio
import email.utils
import itertools
import json
import random
import re
import socket
import ssl
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx2
import openai
from openai._vendor.httpx_aiohttp import AiohttpTransport

from llm import egress, tokens
from llm.capabilities import STANDARD, Capabilities, adapt, shape_request, split_think_tags

# The SDK's HTTP response class (openai 3 is built on httpx2): asks `post` for the raw response.
_RAW_RESPONSE = httpx2.Response

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 20.0
RETRY_AFTER_CAP_SECONDS = 60.0


@dataclass(frozen=True)
class EndpointConfig:
    """What a call needs to know about an endpoint, detached from the ORM."""

    id: int
    name: str
    base_url: str
    api_key: str = field(repr=False)
    timeout: float = 60.0
    max_retries: int = 3
    max_concurrency: int = 64
    extra_headers: tuple[tuple[str, str], ...] = ()
    version: str = ""
    # Model name -> what its server accepts (llm.selectors.endpoint_config loads them), and when.
    capabilities: Mapping[str, Capabilities] = field(default_factory=dict, compare=False, repr=False)
    loaded_at: float = field(default=0.0, compare=False)

    @classmethod
    def from_endpoint(cls, endpoint: Any, *, capabilities: Mapping[str, Capabilities] | None = None,
                      loaded_at: float = 0.0) -> EndpointConfig:
        return cls(
            id=endpoint.pk,
            name=endpoint.name,
            base_url=endpoint.base_url,
            api_key=endpoint.api_key,
            timeout=endpoint.timeout_seconds,
            max_retries=endpoint.max_retries,
            max_concurrency=endpoint.max_concurrency,
            extra_headers=tuple(sorted((endpoint.extra_headers or {}).items())),
            version=str(endpoint.updated_at.timestamp()) if endpoint.updated_at else "",
            capabilities=capabilities or {}, loaded_at=loaded_at,
        )


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    tokens_estimated: bool
    latency_ms: int
    ttft_ms: int | None
    attempts: list[dict[str, Any]]
    reasoning: str = ""
    reasoning_tokens: int | None = None  # of completion_tokens, when the server says
    cached_tokens: int | None = None  # of prompt_tokens, when the server says
    # What this call found out about the server (llm.capabilities.FIELDS -> value), and what it said.
    learned: dict[str, Any] = field(default_factory=dict)
    learned_evidence: dict[str, str] = field(default_factory=dict)


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


# --- pooled clients, concurrency limits and learned capabilities, per process --------------------
# Keyed by the loop object (weakly), not id(loop): a new loop can reuse a dead loop's id, and a
# client bound to a closed loop must never be handed out again.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[int, str], openai.AsyncOpenAI]] = (
    weakref.WeakKeyDictionary()
)
_limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[int, int], asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)
# (endpoint id, model) -> (when, capabilities) learned by this process since its config was loaded.
_learned: dict[tuple[int, str], tuple[float, Capabilities]] = {}
_closing: set[asyncio.Task[None]] = set()  # keeps close() tasks of replaced clients alive until done


_last_loop: list[Any] = [None, None, None]  # (loop, clients, limits) of the last call: the common case


def _pools(loop: asyncio.AbstractEventLoop) -> tuple[dict[tuple[int, str], openai.AsyncOpenAI], dict[tuple[int, int], asyncio.Semaphore]]:
    if _last_loop[0] is not loop:
        # A WeakKeyDictionary lookup makes a weak reference each time; most calls share one loop.
        _last_loop[:] = [loop, _clients.setdefault(loop, {}), _limits.setdefault(loop, {})]
    return _last_loop[1], _last_loop[2]


def _client(config: EndpointConfig) -> openai.AsyncOpenAI:
    # Clients hold connections bound to one event loop, so each loop gets its own.
    loop = asyncio.get_running_loop()
    pool = _pools(loop)[0]
    key = (config.id, config.version + config.base_url)
    client = pool.get(key)
    if client is None:
        # The endpoint was edited: close the client built from its old settings.
        for stale in [k for k in pool if k[0] == config.id]:
            task = loop.create_task(pool.pop(stale).close())
            _closing.add(task)
            task.add_done_callback(_closing.discard)
        client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key or "not-needed",
            timeout=config.timeout,
            max_retries=0,
            default_headers=dict(config.extra_headers) or None,
            http_client=_http_client(config),
        )
        pool[key] = client
    return client


def _aiohttp_session(limit: int) -> aiohttp.ClientSession:
    # Every connection's host is resolved and checked by the egress rules, and the checked addresses
    # are the ones connected to: a name re-pointed between the check and the call gains nothing.
    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=5.0, ssl=httpx2.create_ssl_context(),
                                     resolver=egress.CheckedResolver())
    return aiohttp.ClientSession(connector=connector)


def _http_client(config: EndpointConfig) -> httpx2.AsyncClient:
    # The SDK's default caps connections at 1,000: let the endpoint's own limit decide.
    limit = max(config.max_concurrency, 100)
    # The SDK's aiohttp transport: its default httpx pool walks every connection per request.
    transport = AiohttpTransport(client=lambda: _aiohttp_session(limit))
    # Redirects are not followed: a hop could lead anywhere, with the key and extra headers.
    return openai.DefaultAioHttpClient(timeout=config.timeout, transport=transport, follow_redirects=False,
                                       limits=httpx2.Limits(max_connections=limit, max_keepalive_connections=limit))


def _limit(config: EndpointConfig) -> asyncio.Semaphore:
    pool = _pools(asyncio.get_running_loop())[1]
    key = (config.id, config.max_concurrency)
    sem = pool.get(key)
    if sem is None:
        sem = pool[key] = asyncio.Semaphore(config.max_concurrency)
    return sem


def capabilities(config: EndpointConfig, model: str) -> Capabilities:
    """What the model's server accepts: learned here since `config` was loaded, else as loaded."""
    learned = _learned.get((config.id, model))
    if learned is not None and learned[0] >= config.loaded_at:
        return learned[1]
    return config.capabilities.get(model, STANDARD)


def forget_capabilities(config: EndpointConfig, model: str | None = None) -> None:
    """Drop what this process learned about the model (None: every model of the endpoint)."""
    for key in [key for key in _learned if key[0] == config.id and model in (None, key[1])]:
        del _learned[key]


def _remember(config: EndpointConfig, model: str, caps: Capabilities) -> None:
    """Use `caps` from now on in this process; the caller stores them (llm.services.capability_learn)
    for every other process, in its own transaction (the run engine: with the step's commit)."""
    _learned[(config.id, model)] = (time.time(), caps)


async def aclose_all() -> None:
    """Close the pooled clients of the running loop (at shutdown, or at the end of a test)."""
    loop = asyncio.get_running_loop()
    _last_loop[:] = [None, None, None]
    for client in _clients.pop(loop, {}).values():
        await client.close()
    _limits.pop(loop, None)


async def list_models(config: EndpointConfig) -> list[str]:
    """The model ids the endpoint lists (GET /models), through the pooled client."""
    client = _client(config)
    try:
        async with _limit(config):
            page = await client.models.list()
            return sorted(model.id for model in page.data)
    except Exception as exc:  # classified for the caller
        error = classify(exc, model="", timeout=config.timeout)
        error.message = redact(error.message, config.api_key)
        error.args = (error.message,)
        raise error from exc


# --- errors -------------------------------------------------------------------------------------
# Servers echo (partly masked) keys in 401 messages, e.g. "Incorrect API key provided: sk-ab***yz".
_KEY_LIKE = re.compile(r"\b(sk|key|api[-_]?key)[-_][A-Za-z0-9*_\-]{4,}", re.IGNORECASE)


def redact(message: str, api_key: str = "") -> str:
    """Remove the API key (and anything shaped like one) from a message meant for people or logs."""
    if api_key:
        message = message.replace(api_key, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", message)


def _retry_after(headers: Any) -> float | None:
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
        # The aiohttp transport reports refused connections and DNS failures as connect *timeouts*,
        # so the cause chain decides before the exception's class does.
        found = _connection_kind(exc)
        if found is not None:
            kind, message = found
            return LLMError(message, retryable=kind != "tls", kind=kind)
        if isinstance(exc, openai.APITimeoutError):
            return LLMError(f"the endpoint did not answer within {timeout:g} s", retryable=True, kind="timeout")
        return LLMError(f"the connection failed: {exc}", retryable=True, kind="connection")
    if isinstance(exc, openai.APIStatusError):
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
                            http_status=status, retry_after=_retry_after(exc.response.headers))
        return LLMError(f"the endpoint rejected the request (HTTP {status}: {detail})",
                        retryable=False, kind="bad_request", http_status=status)
    if isinstance(exc, openai.APIResponseValidationError | json.JSONDecodeError | ValueError | TypeError | AttributeError):
        return LLMError(f"the endpoint sent a response that is not a chat completion: {exc}",
                        retryable=False, kind="bad_response")
    return LLMError(f"the response was cut off: {type(exc).__name__}: {exc}", retryable=True, kind="bad_response")


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(max(retry_after, 0.0), RETRY_AFTER_CAP_SECONDS)
    # Exponential with full jitter between half and all of the step.
    step = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    return step * (0.5 + random.random() / 2)


# Errors a run waits out (a server restarting, DNS catching up) but a person at a page should see now.
FINAL_WHEN_INTERACTIVE = frozenset({"refused", "dns", "tls", "auth", "model_not_found", "forbidden_address", "redirect"})


def _gives_up(error: LLMError, attempt: int, config: EndpointConfig, *, interactive: bool) -> bool:
    if not error.retryable or attempt > config.max_retries:
        return True
    return interactive and error.kind in FINAL_WHEN_INTERACTIVE


# --- the call -----------------------------------------------------------------------------------
@dataclass
class _Stream:
    on_delta: Callable[[str], None] | None
    parts: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    reasoning_field: str = ""
    ttft: float | None = None


@dataclass
class _Answer:
    text: str
    usage: dict[str, Any] | None
    finish: str
    reasoning: str = ""
    reasoning_field: str = ""  # where the server put the reasoning (llm.capabilities.REASONING_FIELDS)


# Where servers put a model's reasoning beside the answer: vLLM, llama.cpp and DeepSeek send
# reasoning_content, Ollama and newer vLLM reasoning.
_REASONING_KEYS = ("reasoning_content", "reasoning")


def _reasoning_of(part: dict[str, Any]) -> tuple[str, str]:
    for key in _REASONING_KEYS:
        value = part.get(key)
        if isinstance(value, str) and value:
            return value, key
    return "", ""


def _answer(text: str, usage: Any, finish: str, reasoning: str, field_name: str) -> _Answer:
    if not reasoning:
        # Servers that leave the reasoning in the answer wrap it in <think> tags.
        reasoning, text = split_think_tags(text) if text.lstrip().startswith("<think>") else ("", text)
        field_name = "think_tags" if reasoning else ""
    return _Answer(text, usage if isinstance(usage, dict) else None, finish, reasoning, field_name)


def _usage_detail(usage: dict[str, Any] | None, details: str, name: str) -> int | None:
    part = usage.get(details) if usage else None
    value = part.get(name) if isinstance(part, dict) else None
    return value if isinstance(value, int) and value >= 0 else None


def _snippet(body: bytes | str, limit: int = 120) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


def _content_type(headers: Any) -> str:
    return (headers.get("content-type") or "no content type").split(";")[0].strip().lower()


def _choice_text(choice: dict[str, Any], key: str) -> str | None:
    part = choice.get(key)
    return part.get("content") if isinstance(part, dict) else None


def _parse_completion(raw: Any) -> _Answer:
    content_type = _content_type(raw.headers)
    body = raw.content
    if not content_type.endswith("json"):
        raise LLMError(f"the endpoint answered HTTP {raw.status_code} with {content_type} instead of a JSON chat "
                       f"completion: {_snippet(body)!r}", retryable=False, kind="bad_response")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" ({exc.msg} at character {exc.pos})" if isinstance(exc, json.JSONDecodeError) else ""
        raise LLMError(f"the endpoint sent invalid JSON{where}: {_snippet(body)!r}",
                       retryable=False, kind="bad_response") from exc
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise LLMError("the endpoint answered with a chat completion that has no choices",
                       retryable=False, kind="bad_response")
    message = choices[0].get("message")
    reasoning, field_name = _reasoning_of(message) if isinstance(message, dict) else ("", "")
    return _answer(_choice_text(choices[0], "message") or "", data.get("usage"), choices[0].get("finish_reason") or "",
                   reasoning, field_name)


async def _read_stream(raw: Any, sink: _Stream, started: float) -> _Answer:
    content_type = _content_type(raw.headers)
    if content_type != "text/event-stream":
        body = await raw.aread()
        raise LLMError(f"the endpoint answered a streaming request with {content_type} instead of an event "
                       f"stream: {_snippet(body)!r}", retryable=False, kind="bad_response")
    usage = None
    finish = ""
    chunks = 0
    try:
        async for line in raw.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, comments, event names
            data = line[5:].strip()
            if data == "[DONE]":
                break
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError as exc:
                raise LLMError(f"the stream broke after {chunks} chunks: an event was not valid JSON ({exc.msg})",
                               retryable=True, kind="bad_response") from exc
            chunks += 1
            if not isinstance(chunk, dict):
                continue
            if chunk.get("error"):
                error = chunk["error"]
                detail = error.get("message") if isinstance(error, dict) else error
                raise LLMError(f"the endpoint reported an error mid-stream: {detail}", retryable=True, kind="server")
            if chunk.get("usage"):
                usage = chunk["usage"]
            choices = chunk.get("choices")
            if not choices or not isinstance(choices[0], dict):
                continue
            delta = choices[0].get("delta")
            if isinstance(delta, dict):
                _reasoning_delta(delta, sink)
            text = _choice_text(choices[0], "delta")
            if text:
                if sink.ttft is None:
                    sink.ttft = time.perf_counter() - started
                sink.parts.append(text)
                if sink.on_delta is not None:
                    sink.on_delta(text)
            if choices[0].get("finish_reason"):
                finish = choices[0]["finish_reason"]
    except (LLMError, asyncio.CancelledError):
        raise
    except Exception as exc:
        if "timeout" in type(exc).__name__.lower():
            raise LLMError("the endpoint stopped sending in the middle of the answer (read timeout)",
                           retryable=True, kind="timeout") from exc
        raise LLMError(f"the stream was cut off after {chunks} chunks: the server closed the connection",
                       retryable=True, kind="bad_response") from exc
    if not finish and not sink.parts and not sink.reasoning:
        raise LLMError(f"the stream ended after {chunks} chunks without any text or finish reason",
                       retryable=True, kind="bad_response")
    return _answer("".join(sink.parts), usage, finish, "".join(sink.reasoning), sink.reasoning_field)


def _reasoning_delta(delta: dict[str, Any], sink: _Stream) -> None:
    reasoning, field_name = _reasoning_of(delta)
    if reasoning:
        sink.reasoning.append(reasoning)
        sink.reasoning_field = field_name


# Where an endpoint's host points is checked again at call time (at most this stale), so a name
# re-pointed at a metadata service after it was saved is refused too.
EGRESS_RECHECK_SECONDS = 60.0
_egress_checked: dict[str, float] = {}


async def _check_egress(config: EndpointConfig) -> None:
    checked = _egress_checked.get(config.base_url)
    if checked is not None and time.monotonic() - checked < EGRESS_RECHECK_SECONDS:
        return
    # Resolving the host name blocks: off the event loop.
    problem = await asyncio.to_thread(egress.url_problem, config.base_url)
    if problem:
        _egress_checked.pop(config.base_url, None)
        raise LLMError(f"the endpoint URL is not allowed: {problem}", retryable=False, kind="forbidden_address",
                       attempts=[{"attempt": 0, "ok": False, "kind": "forbidden_address", "error": problem}])
    _egress_checked[config.base_url] = time.monotonic()


# The SDK makes an idempotency key for every POST from uuid4 (an os.urandom call each), although
# the OpenAI client sends no idempotency header; handing it one of ours skips that.
_KEY_TAG = uuid.uuid4().hex
_calls = itertools.count(1)


def _idempotency_key() -> str:
    return f"llm-orchestrator-{_KEY_TAG}-{next(_calls)}"


async def _call_once(client: openai.AsyncOpenAI, request: dict[str, Any], sink: _Stream, started: float) -> _Answer:
    # The client's low-level post with a raw response: the SDK still does auth, timeouts, pooling
    # and error statuses, but skips its per-request TypedDict transform and pydantic models
    # (per streamed chunk, too), which cost more CPU than the rest of a step together.
    raw = await client.post("/chat/completions", cast_to=_RAW_RESPONSE, body=request, stream=bool(request.get("stream")),
                            options={"idempotency_key": _idempotency_key()})
    if not request.get("stream"):
        return _parse_completion(raw)
    try:
        return await _read_stream(raw, sink, started)
    finally:
        await raw.aclose()


@dataclass
class _Learning:
    """What one call found out about the server, stored once the call succeeds."""

    caps: Capabilities
    changes: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, str] = field(default_factory=dict)
    adaptations: int = 0

    def adapt(self, error: LLMError, request: dict[str, Any]) -> dict[str, Any] | None:
        """The change to retry with when the server rejected an option we sent, or None."""
        if self.adaptations >= MAX_ADAPTATIONS:
            return None
        change = adapt(status=error.http_status, message=error.message, request=request, caps=self.caps)
        if change:
            self.adaptations += 1
            self.learn(change, error.message)
        return change

    def learn(self, change: dict[str, Any], said: str) -> None:
        self.caps = self.caps.changed(**change)
        self.changes.update(change)
        self.evidence.update(dict.fromkeys(change, said))

    def observe(self, answer: _Answer, request: dict[str, Any]) -> None:
        """What a successful answer shows: usage missing from streams, where reasoning comes."""
        if "stream_options" in request and answer.usage is None and self.caps.stream_usage:
            self.learn({"stream_usage": False}, "a stream with stream_options.include_usage ended without usage")
        if answer.reasoning_field and answer.reasoning_field != self.caps.reasoning_field:
            self.learn({"reasoning_field": answer.reasoning_field}, f"an answer carried {answer.reasoning_field}")


# Rejections adapted to in one call: one per option at most, and the four structured dialects.
MAX_ADAPTATIONS = 6


def _sent_as(caps: Capabilities, json_schema: dict[str, Any] | None) -> dict[str, Any]:
    """How the request differed from the standard dialect, for the attempt's record."""
    sent: dict[str, Any] = {}
    if json_schema is not None and caps.structured_output != STANDARD.structured_output:
        sent["structured_output"] = caps.structured_output
    for name in ("stream_options", "token_limit_param", "temperature"):
        if getattr(caps, name) != getattr(STANDARD, name):
            sent[name] = getattr(caps, name)
    return sent


def _completion(answer: _Answer, messages: list[dict[str, str]], model: str, sink: _Stream, started_all: float,
                attempts: list[dict[str, Any]], learning: _Learning) -> Completion:
    usage = answer.usage
    estimated = usage is None or (not usage.get("prompt_tokens") and not usage.get("completion_tokens"))
    if estimated:
        prompt_tokens = tokens.count_messages(messages, model)
        completion_tokens = tokens.count(answer.text, model) + (tokens.count(answer.reasoning, model) if answer.reasoning else 0)
    else:
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
    return Completion(
        text=answer.text,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        finish_reason=answer.finish,
        tokens_estimated=estimated,
        latency_ms=round((time.perf_counter() - started_all) * 1000),
        ttft_ms=round(sink.ttft * 1000) if sink.ttft is not None else None,
        attempts=attempts,
        reasoning=answer.reasoning,
        reasoning_tokens=_usage_detail(usage, "completion_tokens_details", "reasoning_tokens"),
        cached_tokens=_usage_detail(usage, "prompt_tokens_details", "cached_tokens"),
        learned=learning.changes, learned_evidence=learning.evidence,
    )


def _failure(exc: BaseException, config: EndpointConfig, model: str, attempt: int, started: float) -> tuple[LLMError, dict[str, Any]]:
    error = classify(exc, model=model, timeout=config.timeout)
    error.message = redact(error.message, config.api_key)
    error.args = (error.message,)
    record = {"attempt": attempt, "ok": False, "kind": error.kind, "http_status": error.http_status,
              "error": error.message, "latency_ms": round((time.perf_counter() - started) * 1000)}
    return error, record


def _final(error: LLMError, attempt: int, attempts: list[dict[str, Any]], sink: _Stream) -> LLMError:
    if error.retryable and attempt > 1:
        error.message = f"{error.message} (gave up after {attempt} attempts)"
        error.args = (error.message,)
    error.attempts = attempts
    error.partial_text = "".join(sink.parts)
    return error


async def complete(
    config: EndpointConfig,
    *,
    model: str,
    messages: list[dict[str, str]],
    params: dict[str, Any] | None = None,
    stream: bool = False,
    json_schema: dict[str, Any] | None = None,
    on_delta: Callable[[str], None] | None = None,
    on_retry: Callable[[], None] | None = None,
    interactive: bool = False,
) -> Completion:
    """One chat completion, retried on 429, 5xx, timeouts and connection errors.

    The request is shaped for what the server accepts (llm/capabilities.py); a rejection of an
    option we sent is retried at once in the next dialect, and what worked is stored. `on_delta`
    receives streamed text as it arrives; `on_retry` is called before a retried attempt, so a
    listener can drop the partial text of the failed one. `interactive` calls (a person waits at
    a page) give up at once on errors a retry within seconds cannot fix.
    """
    await _check_egress(config)
    client = _client(config)
    learning = _Learning(capabilities(config, model))
    attempts: list[dict[str, Any]] = []
    started_all = time.perf_counter()
    attempt = 0
    while True:
        attempt += 1
        request = shape_request({"model": model, "messages": messages, **(params or {})}, learning.caps, json_schema,
                                stream=stream)
        sink = _Stream(on_delta=on_delta)
        started = time.perf_counter()
        try:
            async with _limit(config):
                answer = await _call_once(client, request, sink, started)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure is classified and recorded below
            error, record = _failure(exc, config, model, attempt, started)
            adapted = learning.adapt(error, request)
            if adapted:
                record["adapted"] = adapted
            attempts.append(record)
            if not adapted and _gives_up(error, attempt, config, interactive=interactive):
                raise _final(error, attempt, attempts, sink) from exc
            if on_retry is not None:
                on_retry()
            if not adapted:
                delay = _backoff(attempt, error.retry_after)
                record["retry_in_ms"] = round(delay * 1000)
                await asyncio.sleep(delay)
            continue
        success: dict[str, Any] = {"attempt": attempt, "ok": True, "latency_ms": round((time.perf_counter() - started) * 1000)}
        sent_as = _sent_as(learning.caps, json_schema)
        if sent_as:
            success["sent_as"] = sent_as
        attempts.append(success)
        learning.observe(answer, request)
        if learning.changes:
            _remember(config, model, learning.caps)
        return _completion(answer, messages, model, sink, started_all, attempts, learning)
