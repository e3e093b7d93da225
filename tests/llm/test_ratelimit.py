"""Requests/tokens per minute and shared 429 pauses in one process (llm/ratelimit.py), over real HTTP
to the fake server, which records when each request arrived. Bounds are lower bounds only: a slow
machine makes calls later, never earlier, so none of these can flake by being slow."""
import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from llm import client, ratelimit, tokens
from tests.fake_llm import FakeLLM

pytestmark = pytest.mark.usefixtures("close_llm_clients")

Config = Callable[..., client.EndpointConfig]
# The wall clock may read a hair behind the loop's monotonic clock that ends a sleep.
CLOCK_SLACK = 0.02


async def ask(config: client.EndpointConfig, prompt: str, **kwargs: Any) -> client.Completion:
    return await client.complete(config, model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], **kwargs)


def arrivals(fake_llm: FakeLLM, prefix: str) -> list[float]:
    return sorted(a["at"] for a in fake_llm.stats()["arrivals"] if a["prompt"].startswith(prefix))


async def test_calls_beyond_the_burst_are_spaced_at_the_rate(fake_llm: FakeLLM, config_for: Config) -> None:
    config = config_for(requests_per_minute=120)  # 2 a second, a burst of 3 s' worth: 6
    began = time.time()
    await asyncio.gather(*(ask(config, f"spaced {i}") for i in range(10)))
    times = arrivals(fake_llm, "spaced")
    assert len(times) == 10
    for j, at in enumerate(times):
        # The j-th call (from 0) needs j + 1 requests granted: 6 at once, then one every 0.5 s.
        assert at >= began + max(0, j + 1 - 6) / 2 - CLOCK_SLACK, (j, at - began)


async def test_an_endpoint_without_limits_has_no_pacer_until_a_429(fake_llm: FakeLLM, config_for: Config) -> None:
    config = config_for()
    await ask(config, "free")
    assert ratelimit.pacer_for(config) is None
    fake_llm.fail_next({"status": 429, "retry_after_ms": 50})
    await ask(config, "after 429")
    assert ratelimit.pacer_for(config) is not None
    assert ratelimit.paused_until(config) > 0


async def test_a_429_pauses_the_endpoint_for_every_call_but_not_another_endpoint(
        fake_llm: FakeLLM, config_for: Config) -> None:
    limited = config_for()
    other = config_for()
    fake_llm.fail_next({"status": 429, "retry_after": 1})
    first = asyncio.ensure_future(ask(limited, "first"))
    deadline = time.monotonic() + 10
    while not ratelimit.paused_until(limited) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    until = ratelimit.paused_until(limited)
    assert until, "the 429 did not pause the endpoint"
    # Started during the pause: one call to the paused endpoint, one to another endpoint.
    await asyncio.gather(first, ask(limited, "second"), ask(other, "elsewhere"))
    first_times = arrivals(fake_llm, "first")
    assert len(first_times) == 2 and first_times[1] >= until - CLOCK_SLACK
    assert arrivals(fake_llm, "second")[0] >= until - CLOCK_SLACK
    assert arrivals(fake_llm, "elsewhere")[0] < until


async def test_a_call_waiting_for_its_turn_when_a_429_comes_waits_out_the_pause(
        fake_llm: FakeLLM, config_for: Config) -> None:
    config = config_for(requests_per_minute=60)  # 1 a second, a burst of 3
    fake_llm.fail_next({"status": 429, "retry_after": 2})
    began = time.time()
    # Three calls go at once and one meets the 429; the fourth is booked 1 s later, inside the pause.
    await asyncio.gather(*(ask(config, f"queued {i}") for i in range(4)))
    until = ratelimit.paused_until(config)
    times = arrivals(fake_llm, "queued")
    assert len(times) == 5 and until > began + 2
    assert sum(at < until - CLOCK_SLACK for at in times) == 3


def test_booked_tokens_are_settled_with_what_the_server_reported() -> None:
    now = 1_000_000.0
    estimated = ratelimit.Pacer(1, tokens_per_minute=600)  # 10 a second, a burst of 30
    assert estimated.book(30, now) == (now, 30.0)
    assert estimated.book(30, now)[0] == pytest.approx(now + 3)
    settled = ratelimit.Pacer(2, tokens_per_minute=600)
    settled.book(30, now)
    settled.settle(30, 10)  # the answer used 10 of the 30 booked
    assert settled.book(30, now)[0] == pytest.approx(now + 1)


def test_a_token_estimate_is_the_prompt_and_the_answer_limit_times_n() -> None:
    messages = [{"role": "user", "content": "Tell me about tides"}]
    prompt = tokens.count_messages(messages, "gpt-4o-mini")
    assert ratelimit.estimated_tokens({"model": "gpt-4o-mini", "messages": messages, "max_tokens": 7}) == prompt + 7
    assert ratelimit.estimated_tokens({"model": "gpt-4o-mini", "messages": messages, "max_completion_tokens": 5,
                                       "n": 2}) == prompt + 10
    assert ratelimit.estimated_tokens({"model": "gpt-4o-mini", "messages": messages}) == (
        prompt + ratelimit.DEFAULT_COMPLETION_TOKENS)


async def test_tokens_per_minute_spaces_calls_by_their_tokens(fake_llm: FakeLLM, config_for: Config) -> None:
    config = config_for(tokens_per_minute=600)  # 10 a second, a burst of 30
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "tok 0"}], "max_tokens": 5}
    each = ratelimit.estimated_tokens(request)
    began = time.time()
    answers = await asyncio.gather(*(ask(config, f"tok {i}", params={"max_tokens": 5}) for i in range(4)))
    used = min(each, answers[0].prompt_tokens + answers[0].completion_tokens)
    times = arrivals(fake_llm, "tok")
    assert len(times) == 4
    for j, at in enumerate(times):
        # At best every earlier call was settled to what it used before this one booked its estimate.
        assert at >= began + (j * used + each - 30) / 10 - CLOCK_SLACK, (j, at - began)
    assert times[3] >= began + 0.3  # so the bound above says something: 4 calls need more than a burst
