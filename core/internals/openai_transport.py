"""The aiohttp transport that the openai SDK vendors for its httpx client.

Checked against openai 3.57.0: `openai._vendor.httpx_aiohttp.AiohttpTransport(client=...)` takes an
aiohttp ClientSession or a callable that makes one (on first use, in the running loop), and is an
httpx2 AsyncBaseTransport that openai.DefaultAioHttpClient accepts as `transport=`. It is private to
the SDK; llm/pool.py is its only user.
"""
from __future__ import annotations

from openai._vendor.httpx_aiohttp import AiohttpTransport

__all__ = ["AiohttpTransport"]
