"""Stream one chat completion to a web client: llm.client's on_delta callbacks become an async iterator.

Used by the LLM Tester page (llm/views.py), which sends each item as a server-sent event.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from llm import client, services

logger = logging.getLogger(__name__)

StreamItem = tuple[str, dict[str, Any]]  # ("delta" | "reset" | "done" | "error", data)


async def stream_completion(config: client.EndpointConfig, *, model: str, messages: list[dict[str, str]],
                            params: dict[str, Any] | None = None) -> AsyncIterator[StreamItem]:
    """Yield ("delta", {"text"}) as tokens arrive, ("reset", {}) before a retried attempt, then one
    ("done", {...metrics}) or ("error", {"message", "kind", "retryable"}). Stopping early cancels the call."""
    queue: asyncio.Queue[StreamItem] = asyncio.Queue()

    async def call() -> None:
        try:
            completion = await client.complete(
                config, model=model, messages=messages, params=params, stream=True,
                on_delta=lambda text: queue.put_nowait(("delta", {"text": text})),
                on_retry=lambda: queue.put_nowait(("reset", {})), interactive=True,
            )
        except client.LLMError as exc:
            queue.put_nowait(("error", {"message": exc.message, "kind": exc.kind, "retryable": exc.retryable}))
        except Exception:  # the page must always get an ending, never hang
            logger.exception("LLM tester call to endpoint %s failed", config.name)
            queue.put_nowait(("error", {"message": "Unexpected error; see the server log.", "kind": "error",
                                        "retryable": False}))
        else:
            if completion.learned:  # stored for every process, as a run's step would
                await services.acapability_learn(endpoint_id=config.id, model=model, changes=completion.learned,
                                                 evidence=completion.learned_evidence)
            queue.put_nowait(("done", {
                "text": completion.text, "prompt_tokens": completion.prompt_tokens,
                "completion_tokens": completion.completion_tokens, "tokens_estimated": completion.tokens_estimated,
                "finish_reason": completion.finish_reason, "latency_ms": completion.latency_ms,
                "ttft_ms": completion.ttft_ms, "attempts": len(completion.attempts),
                "reasoning": completion.reasoning, "reasoning_tokens": completion.reasoning_tokens,
                "cached_tokens": completion.cached_tokens,
            }))

    task = asyncio.create_task(call())
    try:
        while True:
            kind, data = await queue.get()
            yield kind, data
            if kind in ("done", "error"):
                return
    finally:
        # The browser went away (or the answer ended): never leave a call running for nobody.
        task.cancel()
