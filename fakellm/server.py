"""A deterministic OpenAI-compatible server for development, tests and the benchmark.

`python manage.py fake_llm --port 8001` serves it. Two kinds of reply, both deterministic:
- `readable` (the command's default, what `make run` shows): sentences, an outline or a summary
  made from the prompt's words (fakellm/replies.py); JSON valid against the request's schema.
- `echo` (Settings' default; tests/fake_llm.py and the benchmark): the last user message as
  "echo:<first 40 chars> #<sha1[:10]>" padded with "w4 w5 ..." to `tokens` words, the same text as
  ../shared/bench/fake_llm.py, so `reply_text()` predicts a whole chain's output.
One word is one streamed chunk in both.

`Settings.dialect` (`--dialect`, or `/_control`) makes it answer as a real server does: OpenAI (the
default), vLLM, Ollama, llama-server, LM Studio or a strict FastAPI server; the table of what each
copies is in fakellm/dialects.py, the sources in docs/compatibility.md.

Tests steer it over HTTP: `POST /_control` changes settings or queues faults for the next
requests, `GET /_stats` counts requests and keeps the last request bodies and arrival times (the last
1,000), `GET /_requests` lists every request's arrival time and prompt (with `log_requests` on), `POST /_reset` clears.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from fakellm.dialects import DIALECTS, Dialect, Output, dialect_refusal, reasoning_text, requested_output
from fakellm.replies import readable_pieces, readable_text

ECHO_CHARS = 40
DEFAULT_MODELS = ("gpt-4o-mini", "fake-model")
LIST_SETTINGS = ("models", "reasoning_models")


def last_user_message(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages or []):
        if message.get("role") == "user":
            content = message.get("content") or ""
            if isinstance(content, list):
                content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
            return content
    return ""


def reply_words(prompt: str, tokens: int) -> list[str]:
    digest = hashlib.sha1(prompt.encode()).hexdigest()[:10]
    snippet = prompt[:ECHO_CHARS].replace("\n", " ")
    head = [w for w in f"echo:{snippet} #{digest}".split(" ") if w] or ["echo:"]
    return head + [f"w{i}" for i in range(len(head) + 1, tokens + 1)]


def reply_text(prompt: str, tokens: int = 20) -> str:
    return " ".join(reply_words(prompt, tokens))


def _value_for(schema: dict[str, Any], text: str) -> Any:
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object" or "properties" in schema:
        return {name: _value_for(sub, text) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [_value_for(schema.get("items") or {"type": "string"}, text)]
    if kind in ("integer", "number"):
        # The word count, within the schema's bounds.
        value = min(max(len(text.split()), schema.get("minimum", float("-inf"))), schema.get("maximum", float("inf")))
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    return text


@dataclass
class Settings:
    latency_ms: float = 0.0
    inter_token_ms: float = 0.0
    tokens: int = 20
    models: tuple[str, ...] = DEFAULT_MODELS
    api_key: str = ""
    error_rate: float = 0.0
    seed: int = 1
    retry_after_ms: int | None = 10
    no_stream_usage: bool = False
    reject_stream_options: bool = False
    reject_response_format: bool = False
    # Like OpenAI: a 401 that quotes the rejected key, partly masked ("sk-ab***...wxyz").
    echo_key_on_401: bool = False
    # "echo" (tests and the benchmark predict it with reply_text) or "readable" (the demo's sentences).
    replies: str = "echo"
    # Which real server to imitate: a key of fakellm.dialects.DIALECTS.
    dialect: str = "openai"
    # Models that reason (and are served besides `models`); None: the dialect's own list.
    reasoning_models: tuple[str, ...] | None = None
    # OpenAI's hidden reasoning, counted inside completion_tokens; and its prompt cache hits.
    reasoning_tokens: int = 8
    cached_tokens: int = 0
    # Like OpenRouter: the call's cost in the usage (`usage.cost`); None sends none.
    usage_cost: float | None = None
    # Keep (arrival time, last user message) of every chat request for `GET /_requests`: a test
    # can then tell which calls came after a moment (a kill) for which prompt.
    log_requests: bool = False


@dataclass
class State:
    settings: Settings
    faults: deque[dict[str, Any]] = field(default_factory=deque)
    requests: int = 0
    chat_requests: int = 0
    errors: int = 0
    inflight: int = 0
    inflight_max: int = 0
    peers: set[tuple[str, int]] = field(default_factory=set)
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))
    # When each chat request arrived (epoch seconds) and its last user message: pacing is tested by them.
    arrivals: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))
    rng: random.Random = field(default_factory=random.Random)
    logged: list[tuple[float, str]] = field(default_factory=list)


@dataclass
class Answer:
    """One reply, whether sent whole or streamed: content pieces, visible reasoning pieces, usage."""

    pieces: list[str]
    finish: str
    reasoning: list[str]
    reasoning_fields: tuple[str, ...]
    usage: dict[str, Any]


@dataclass
class Stream:
    """What every chunk of one streamed reply repeats."""

    response: web.StreamResponse
    cid: str
    created: int
    model: str
    include_usage: bool

    def chunk(self, delta: dict[str, Any] | None, finish_reason: str | None = None, use: Any = None,
              choices: bool = True) -> bytes:
        data: dict[str, Any] = {
            "id": self.cid, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}] if choices else [],
        }
        if self.include_usage:
            data["usage"] = use
        return b"data: " + json.dumps(data).encode() + b"\n\n"


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": kind, "code": code, "param": None}}
    return web.json_response(body, status=status, headers=headers)


def _state(request: web.Request) -> State:
    return request.app["state"]


def _dialect(settings: Settings) -> Dialect:
    return DIALECTS[settings.dialect]


def _reasons(settings: Settings, model: str) -> bool:
    models = settings.reasoning_models
    return model in (_dialect(settings).reasoning_models if models is None else models)


def _authorized(state: State, request: web.Request) -> bool:
    key = state.settings.api_key
    return not key or request.headers.get("Authorization", "") == f"Bearer {key}"


def _unauthorized(state: State, request: web.Request) -> web.Response:
    message = "Incorrect API key provided."
    if state.settings.echo_key_on_401:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ")
        message = f"Incorrect API key provided: {sent[:6]}{'*' * 10}{sent[-4:]}. You can find your API key at ..."
    return _error(401, message, "invalid_request_error", code="invalid_api_key")


def _serves(settings: Settings, model: str) -> bool:
    return "*" in settings.models or model in settings.models or _dialect(settings).any_model or _reasons(settings, model)


def _refusal(state: State, request: web.Request, body: dict[str, Any]) -> web.Response | None:
    """The answer to a request the server will not run: bad key, unknown model, unsupported fields."""
    s = state.settings
    if not _authorized(state, request):
        return _unauthorized(state, request)
    model = body.get("model") or ""
    if not _serves(s, model):
        return _error(404, f"The model `{model}` does not exist or you do not have access to it.",
                      "invalid_request_error", code="model_not_found")
    if s.reject_stream_options and "stream_options" in body:
        return _error(400, "Unrecognized request argument supplied: stream_options", "invalid_request_error")
    if s.reject_response_format and "response_format" in body:
        return _error(400, "response_format is not supported by this server", "invalid_request_error")
    refusal = dialect_refusal(_dialect(s), body, _reasons(s, model))
    return web.json_response(refusal[1], status=refusal[0]) if refusal else None


def _next_fault(state: State) -> dict[str, Any]:
    s = state.settings
    fault = state.faults.popleft() if state.faults else {}
    if not fault and s.error_rate > 0 and state.rng.random() < s.error_rate:
        fault = {"status": 429 if state.rng.random() < 0.5 else 500}
        if s.retry_after_ms is not None:
            fault["retry_after_ms"] = s.retry_after_ms
    return fault


async def _status_fault(state: State, fault: dict[str, Any], latency: float) -> web.Response:
    state.errors += 1
    headers = {}
    if fault.get("retry_after_ms") is not None:
        headers["retry-after-ms"] = str(fault["retry_after_ms"])
    if fault.get("retry_after") is not None:
        headers["retry-after"] = str(fault["retry_after"])
    if latency:
        await asyncio.sleep(latency)
    return _error(fault["status"], fault.get("message", f"fake error {fault['status']}"),
                  "rate_limit_error" if fault["status"] == 429 else "server_error", headers)


async def _fault_response(request: web.Request, state: State, fault: dict[str, Any], latency: float,
                          model: str, streamed: bool) -> web.StreamResponse | None:
    """The whole answer when a queued fault replaces it (streamed broken answers are written later)."""
    if fault.get("hang"):
        # A hung request is not work in flight: it must not count in inflight_max after a reset.
        state.inflight -= 1
        try:
            await _until_disconnected(request, 3600)
        finally:
            state.inflight += 1
        return web.Response(status=504, text="gave up hanging")
    if "status" in fault:
        return await _status_fault(state, fault, latency)
    if fault.get("html"):
        return web.Response(text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")
    if fault.get("invalid_json") and not streamed:
        return web.Response(text='{"id": "x", "choices": [', content_type="application/json")
    if fault.get("no_choices") and not streamed:
        return web.json_response({"id": "x", "object": "chat.completion", "created": 0, "model": model, "choices": []})
    return None


def _usage(settings: Settings, prompt_tokens: int, completion_tokens: int, reasoning_tokens: int) -> dict[str, Any]:
    usage: dict[str, Any] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                             "total_tokens": prompt_tokens + completion_tokens}
    if _dialect(settings).usage_details:
        usage["prompt_tokens_details"] = {"cached_tokens": settings.cached_tokens}
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    if settings.usage_cost is not None:
        usage["cost"] = settings.usage_cost
    return usage


def _words_as_pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [words[0], *(" " + word for word in words[1:])]


def build_answer(body: dict[str, Any], settings: Settings, fault: dict[str, Any]) -> Answer:
    dialect = _dialect(settings)
    pieces, finish = reply_pieces(body, settings, fault, requested_output(dialect, body))
    reasons = _reasons(settings, body.get("model") or "")
    thinking: list[str] = []
    if reasons and dialect.reasoning_fields:
        thinking = _words_as_pieces(reasoning_text(last_user_message(body.get("messages") or [])))
    reasoning_tokens = len(thinking) + (settings.reasoning_tokens if reasons and dialect.hidden_reasoning else 0)
    prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in body.get("messages") or [])
    usage = _usage(settings, prompt_tokens, len(pieces) + reasoning_tokens, reasoning_tokens)
    return Answer(pieces, finish, thinking, dialect.reasoning_fields if thinking else (), usage)


def _completion(answer: Answer, cid: str, created: int, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(answer.pieces), "refusal": None}
    for name in answer.reasoning_fields:
        message[name] = "".join(answer.reasoning)
    return {
        "id": cid, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": answer.finish}],
        "usage": answer.usage,
    }


async def _write_broken_stream(stream: Stream, fault: dict[str, Any]) -> bool:
    """Write the malformed stream a fault asks for; False when the fault asks for none."""
    if fault.get("invalid_json"):
        await stream.response.write(stream.chunk({"role": "assistant", "content": ""}) + b'data: {"id": "x", "choices": [\n\n')
    elif fault.get("no_choices"):
        for _ in range(3):
            await stream.response.write(stream.chunk(None, choices=False))
        await stream.response.write(b"data: [DONE]\n\n")
    else:
        return False
    await stream.response.write_eof()
    return True


async def _write_deltas(request: web.Request, stream: Stream, deltas: list[dict[str, str]],
                        cut_after: int | None, inter_token: float) -> bool:
    """Reasoning deltas first, then content; False when the fault cut the connection."""
    for i, delta in enumerate(deltas):
        if cut_after is not None and i >= cut_after:
            # Drop the connection mid-stream, as a crashed upstream would.
            request.transport.close()
            return False
        if inter_token and i:
            await asyncio.sleep(inter_token)
        await stream.response.write(stream.chunk(delta))
    return True


async def _stream_answer(request: web.Request, state: State, body: dict[str, Any], fault: dict[str, Any],
                         answer: Answer, stream: Stream, latency: float) -> web.StreamResponse:
    await stream.response.prepare(request)
    if latency:
        await asyncio.sleep(latency)
    if await _write_broken_stream(stream, fault):
        return stream.response
    await stream.response.write(stream.chunk({"role": "assistant", "content": ""}))
    deltas = [dict.fromkeys(answer.reasoning_fields, piece) for piece in answer.reasoning]
    deltas += [{"content": piece} for piece in answer.pieces]
    inter_token = fault.get("inter_token_ms", state.settings.inter_token_ms) / 1000
    if not await _write_deltas(request, stream, deltas, fault.get("cut_stream_after"), inter_token):
        return stream.response
    await stream.response.write(stream.chunk({}, finish_reason=answer.finish))
    if stream.include_usage:
        await stream.response.write(stream.chunk(None, use=answer.usage, choices=False))
    await stream.response.write(b"data: [DONE]\n\n")
    await stream.response.write_eof()
    return stream.response


def _includes_usage(settings: Settings, body: dict[str, Any]) -> bool:
    asked = bool((body.get("stream_options") or {}).get("include_usage"))
    return asked and not settings.no_stream_usage and _dialect(settings).stream_usage


async def chat(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    state.requests += 1
    state.chat_requests += 1
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if peer:
        state.peers.add(tuple(peer[:2]))
    state.inflight += 1
    state.inflight_max = max(state.inflight_max, state.inflight)
    try:
        return await _chat(request, state)
    finally:
        state.inflight -= 1


async def _chat(request: web.Request, state: State) -> web.StreamResponse:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, "invalid JSON body", "invalid_request_error")
    state.recent.append(body)
    state.arrivals.append({"at": time.time(), "prompt": last_user_message(body.get("messages") or [])})
    if state.settings.log_requests:
        state.logged.append((time.time(), last_user_message(body.get("messages") or [])))
    refusal = _refusal(state, request, body)
    if refusal is not None:
        return refusal
    fault = _next_fault(state)
    latency = fault.get("latency_ms", state.settings.latency_ms) / 1000
    model = body.get("model") or ""
    streamed = bool(body.get("stream"))
    faulty = await _fault_response(request, state, fault, latency, model, streamed)
    if faulty is not None:
        return faulty
    answer = build_answer(body, state.settings, fault)
    cid, created = f"chatcmpl-fake{state.requests}", int(time.time())
    if not streamed:
        if latency:
            await asyncio.sleep(latency)
        return web.json_response(_completion(answer, cid, created, model))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    stream = Stream(response, cid, created, model, _includes_usage(state.settings, body))
    return await _stream_answer(request, state, body, fault, answer, stream, latency)


async def models(request: web.Request) -> web.Response:
    state = _state(request)
    state.requests += 1
    if not _authorized(state, request):
        return _unauthorized(state, request)
    listed = [m for m in state.settings.models if m != "*"] or list(DEFAULT_MODELS)
    return web.json_response({"object": "list", "data": [
        {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in listed]})


async def stats(request: web.Request) -> web.Response:
    state = _state(request)
    return web.json_response({
        "requests": state.requests, "chat_requests": state.chat_requests, "errors": state.errors,
        "inflight": state.inflight, "inflight_max": state.inflight_max, "connections": len(state.peers),
        "recent": list(state.recent), "faults_left": len(state.faults), "arrivals": list(state.arrivals),
    })


async def requests_logged(request: web.Request) -> web.Response:
    """Every chat request since the last reset while `log_requests` was on: [arrival time, prompt]."""
    return web.json_response({"requests": _state(request).logged})


def _setting_problem(key: str, value: Any) -> str | None:
    if not hasattr(Settings, key) and key not in Settings.__dataclass_fields__:
        return f"unknown setting {key}"
    if key == "dialect" and value not in DIALECTS:
        return f"unknown dialect {value}; one of {', '.join(DIALECTS)}"
    return None


async def control(request: web.Request) -> web.Response:
    state = _state(request)
    body = await request.json()
    for fault in body.pop("faults", []):
        state.faults.append(fault)
    for key, value in body.items():
        problem = _setting_problem(key, value)
        if problem:
            return web.json_response({"error": problem}, status=400)
        setattr(state.settings, key, tuple(value) if key in LIST_SETTINGS and value is not None else value)
    if "seed" in body:
        state.rng.seed(body["seed"])
    return web.json_response({"ok": True})


async def reset(request: web.Request) -> web.Response:
    state = _state(request)
    base = request.app["base_settings"]
    state.settings = Settings(**base.__dict__)
    state.rng.seed(state.settings.seed)
    state.faults.clear()
    state.recent.clear()
    state.arrivals.clear()
    state.logged.clear()
    state.peers.clear()
    state.requests = state.chat_requests = state.errors = 0
    state.inflight_max = state.inflight
    return web.json_response({"ok": True})


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def build_app(settings: Settings | None = None) -> web.Application:
    state = State(settings=settings or Settings())
    state.rng.seed(state.settings.seed)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app["state"] = state
    app["base_settings"] = Settings(**state.settings.__dict__)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/_stats", stats)
    app.router.add_get("/_requests", requests_logged)
    app.router.add_post("/_control", control)
    app.router.add_post("/_reset", reset)
    app.router.add_get("/health", health)
    return app


async def _until_disconnected(request: web.Request, limit_seconds: float) -> None:
    # aiohttp does not cancel a handler when its client goes away, so watch the transport.
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        if request.transport is None or request.transport.is_closing():
            return
        await asyncio.sleep(0.05)


def reply_pieces(body: dict[str, Any], settings: Settings, fault: dict[str, Any],
                 output: Output | None = None) -> tuple[list[str], str]:
    """The answer as streamed chunks (joined, the whole text) and its finish reason."""
    output = output or requested_output(_dialect(settings), body)
    prompt = last_user_message(body.get("messages") or [])
    tokens = settings.tokens
    cap = body.get("max_completion_tokens") or body.get("max_tokens")
    if not (isinstance(cap, int) and cap > 0):
        cap = None
    if settings.replies == "readable" and "content" not in fault:
        return _readable_pieces(output, prompt, tokens, cap)
    if cap:
        tokens = min(tokens, cap)
    if "content" in fault:
        words = str(fault["content"]).split(" ")
    elif output.kind != "text":
        words = [_json_reply(output, reply_text(prompt, tokens))]
    else:
        words = reply_words(prompt, tokens)
    finish = "length" if cap and len(words) >= cap and tokens < settings.tokens else "stop"
    return [words[0], *(" " + word for word in words[1:])], finish


def _readable_pieces(output: Output, prompt: str, tokens: int, cap: int | None) -> tuple[list[str], str]:
    text = readable_text(prompt, tokens)
    if output.kind != "text":
        return [_json_reply(output, text)], "stop"
    pieces = readable_pieces(text)
    if cap and len(pieces) > cap:
        return pieces[:cap], "length"
    return pieces, "stop"


def _json_reply(output: Output, text: str) -> str:
    value = _value_for(output.schema, text) if output.schema else {"text": text}
    return json.dumps(value)


def serve(host: str, port: int, settings: Settings) -> None:
    web.run_app(build_app(settings), host=host, port=port, access_log=None, print=None, backlog=4096)
