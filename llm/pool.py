"""Pooled SDK clients per event loop, the per-endpoint concurrency limit, and the egress check at call time."""
from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

import aiohttp
import httpx2
import openai

from core.internals.openai_transport import AiohttpTransport
from llm import egress
from llm.config import EndpointConfig
from llm.errors import LLMError

# --- pooled clients, concurrency limits and learned capabilities, per process --------------------
# Keyed by the loop object (weakly), not id(loop): a new loop can reuse a dead loop's id, and a
# client bound to a closed loop must never be handed out again.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[int, str], openai.AsyncOpenAI]] = (
    weakref.WeakKeyDictionary()
)
_limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[int, int], asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)
_closing: set[asyncio.Task[None]] = set()  # keeps close() tasks of replaced clients alive until done


_last_loop: list[Any] = [None, None, None]  # (loop, clients, limits) of the last call: the common case


def _pools(loop: asyncio.AbstractEventLoop) -> tuple[dict[tuple[int, str], openai.AsyncOpenAI], dict[tuple[int, int], asyncio.Semaphore]]:
    if _last_loop[0] is not loop:
        # A WeakKeyDictionary lookup makes a weak reference each time; most calls share one loop.
        _last_loop[:] = [loop, _clients.setdefault(loop, {}), _limits.setdefault(loop, {})]
    return _last_loop[1], _last_loop[2]


def client_for(config: EndpointConfig) -> openai.AsyncOpenAI:
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
            http_client=_httpclient_for(config),
        )
        pool[key] = client
    return client


def _aiohttp_session(limit: int) -> aiohttp.ClientSession:
    # Every connection's host is resolved and checked by the egress rules, and the checked addresses
    # are the ones connected to: a name re-pointed between the check and the call gains nothing.
    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=5.0, ssl=httpx2.create_ssl_context(),
                                     resolver=egress.CheckedResolver())
    return aiohttp.ClientSession(connector=connector)


def _httpclient_for(config: EndpointConfig) -> httpx2.AsyncClient:
    # The SDK's default caps connections at 1,000: let the endpoint's own limit decide.
    limit = max(config.max_concurrency, 100)
    # The SDK's aiohttp transport: its default httpx pool walks every connection per request.
    transport = AiohttpTransport(client=lambda: _aiohttp_session(limit))
    # Redirects are not followed: a hop could lead anywhere, with the key and extra headers.
    return openai.DefaultAioHttpClient(timeout=config.timeout, transport=transport, follow_redirects=False,
                                       limits=httpx2.Limits(max_connections=limit, max_keepalive_connections=limit))


def limit(config: EndpointConfig) -> asyncio.Semaphore:
    pool = _pools(asyncio.get_running_loop())[1]
    key = (config.id, config.max_concurrency)
    sem = pool.get(key)
    if sem is None:
        sem = pool[key] = asyncio.Semaphore(config.max_concurrency)
    return sem



async def aclose_all() -> None:
    """Close the pooled clients of the running loop (at shutdown, or at the end of a test)."""
    loop = asyncio.get_running_loop()
    _last_loop[:] = [None, None, None]
    for client in _clients.pop(loop, {}).values():
        await client.close()
    _limits.pop(loop, None)



# Where an endpoint's host points is checked again at call time (at most this stale), so a name
# re-pointed at a metadata service after it was saved is refused too.
EGRESS_RECHECK_SECONDS = 60.0
_egress_checked: dict[str, float] = {}


async def check_egress(config: EndpointConfig) -> None:
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


