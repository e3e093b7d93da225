"""Requests and tokens per minute per endpoint, shared by every run, experiment and process.

**In a process** one `Pacer` per endpoint serves every event loop and thread that calls it (runs,
experiments, the LLM Tester). Each limit is a GCRA (a token bucket kept as one number, the time at
which the bucket would be full again, `tat`): it allows `limit / 60` per second with a burst of
BURST_SECONDS' worth. A call books a start time under a threading lock and sleeps until then on
its own loop, so 100 callers at once are spaced at the rate instead of released together.

**Across processes** (distributed mode: `LLM_RATE_LIMIT_SHARED`, on with
`RUNS_BACKEND=procrastinate`) the database is the truth. `EndpointAllowance` holds the same GCRA
for the endpoint as a whole. A process reserves a slice (SLICE_SECONDS' worth, or what its waiting
call needs) with one `UPDATE ... RETURNING`, which advances the row's GCRA and answers from when
the slice may be used; the process's own pacer hands the slice out at the rate, never before that
start. Units used by time t are thus never more than those granted by time t, and the row keeps
grants within burst + rate x elapsed for all processes together. A slice is dropped when it is not
used within about SLICE_SECONDS of its start, so an idle process never hoards a burst. However many
calls a process makes, it writes the row about once per SLICE_SECONDS per endpoint. Clocks: the
row holds epoch seconds from the processes' clocks, which NTP keeps within milliseconds.

**A 429** pauses the endpoint for its Retry-After (else the backoff): at once in this process (a
call waiting for its turn looks again when it wakes, a new one waits) and in the row, which other
processes read with their next reservation, or every SLICE_SECONDS for an endpoint without limits.
After a pause the allowance restarts nearly empty (RESUME_SECONDS' worth), so calls resume at the
rate, not in a burst.

**Tokens**: a call books an estimate (the prompt counted with llm/tokens.py, plus max_tokens or
max_completion_tokens times n, else DEFAULT_COMPLETION_TOKENS) and settles the difference with the
usage the server reports. In embedded mode (one process) the in-process pacer is the limit; an
endpoint without limits costs a dict lookup per attempt.
"""
from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, connections

from core.sql import execute
from llm import tokens
from llm.config import EndpointConfig

logger = logging.getLogger(__name__)

BURST_SECONDS = 3.0
SLICE_SECONDS = 1.0
RESUME_SECONDS = 1.0
DEFAULT_COMPLETION_TOKENS = 512


class _Bucket:
    """One limit as a GCRA; in shared mode also the units reserved from the row and not used yet."""

    __slots__ = ("capacity", "credit", "rate", "tat")

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60
        self.capacity = max(1.0, self.rate * BURST_SECONDS)
        self.tat = 0.0
        self.credit = 0.0

    def cost(self, amount: float) -> float:
        # More than a burst at once could never start: it takes the whole burst.
        return min(float(amount), self.capacity)

    def earliest(self, cost: float, now: float) -> float:
        return max(now, self.tat + (cost - self.capacity) / self.rate)

    def take(self, cost: float, start: float) -> None:
        self.tat = max(self.tat, start) + cost / self.rate

    def resumed_tat(self, when: float) -> float:
        """The `tat` that leaves RESUME_SECONDS' worth (at least one unit) free at `when`."""
        resume = min(self.capacity, max(1.0, self.rate * RESUME_SECONDS))
        return when + (self.capacity - resume) / self.rate

    def slice(self, need: float, credit: float) -> float:
        """How much to reserve from the row so that `need` is covered: at least SLICE_SECONDS' worth."""
        deficit = need - credit
        if deficit <= 0:
            return 0.0
        return min(max(deficit, math.ceil(self.rate * SLICE_SECONDS)), self.capacity)


class Pacer:
    """The limits of one endpoint in this process; `shared` takes its allowance from the database row."""

    def __init__(self, endpoint_id: int, requests_per_minute: int | None = None,
                 tokens_per_minute: int | None = None, *, shared: bool = False) -> None:
        self.endpoint_id = endpoint_id
        self.shared = shared
        self.lock = threading.Lock()
        self.limits: tuple[int | None, int | None] = (None, None)
        self.requests: _Bucket | None = None
        self.tokens: _Bucket | None = None
        self.paused_until = 0.0
        self.grant_start = 0.0  # shared: the reserved slice may not be used before this
        self.fresh_until = 0.0  # shared: the slice and the pause read from the row hold until this
        self.configure(requests_per_minute, tokens_per_minute)

    def configure(self, requests_per_minute: int | None, tokens_per_minute: int | None) -> None:
        if (requests_per_minute, tokens_per_minute) == self.limits:
            return
        with self.lock:
            self.limits = (requests_per_minute, tokens_per_minute)
            self.requests = _Bucket(requests_per_minute) if requests_per_minute else None
            self.tokens = _Bucket(tokens_per_minute) if tokens_per_minute else None
            self.fresh_until = 0.0

    def _covered(self, cost: float, now: float) -> bool:
        if now >= self.fresh_until:
            return False
        return ((self.requests is None or self.requests.credit >= 1)
                and (self.tokens is None or self.tokens.credit >= cost))

    def book(self, tokens_wanted: int, now: float) -> tuple[float, float] | None:
        """(start, tokens booked) for one call, or None when a slice must first be reserved."""
        with self.lock:
            requests, tokens_ = self.requests, self.tokens
            cost = tokens_.cost(tokens_wanted) if tokens_ is not None else 0.0
            if self.shared and not self._covered(cost, now):
                return None
            start = max(now, self.paused_until, self.grant_start)
            if requests is not None:
                start = max(start, requests.earliest(1.0, now))
            if tokens_ is not None:
                start = max(start, tokens_.earliest(cost, now))
                tokens_.take(cost, start)
                tokens_.credit -= cost
            if requests is not None:
                requests.take(1.0, start)
                requests.credit -= 1
            return start, cost

    def settle(self, booked: float, used: int) -> None:
        """Count what a call really used instead of what it booked."""
        with self.lock:
            if self.tokens is not None:
                delta = used - booked
                self.tokens.tat += delta / self.tokens.rate
                self.tokens.credit -= delta

    def pause_here(self, until: float) -> None:
        with self.lock:
            if until <= self.paused_until:
                return
            self.paused_until = until
            for bucket in (self.requests, self.tokens):
                if bucket is not None:
                    bucket.tat = max(bucket.tat, bucket.resumed_tat(until))

    async def pause(self, until: float) -> None:
        """No call starts before `until`: at once in this process, and through the row in the others."""
        self.pause_here(until)
        if self.shared:
            await _in_db_thread(_pause_row, self, until)

    async def wait_turn(self, request: dict[str, Any]) -> float:
        """Wait until this call may start; the tokens it booked (settle them after the answer)."""
        # Counting a long prompt (and loading the encoding, the first time) is no work for the loop.
        wanted = await asyncio.to_thread(estimated_tokens, request) if self.tokens is not None else 0
        while True:
            now = time.time()
            booked = self.book(wanted, now)
            if booked is None:
                await _in_db_thread(self.refill, wanted)
                continue
            start, cost = booked
            if start > now:
                await asyncio.sleep(start - now)
            # A 429 while this call slept: its turn fell in the pause, so it books again after it.
            if self.paused_until <= start:
                return cost

    # --- shared mode: runs on the database thread ---------------------------------------------
    def refill(self, tokens_wanted: int) -> None:
        """Reserve a slice from the row (or, without limits, read its pause) unless one is at hand."""
        with self.lock:
            now = time.time()
            requests, tokens_ = self.requests, self.tokens
            cost = tokens_.cost(tokens_wanted) if tokens_ is not None else 0.0
            if self._covered(cost, now):
                return  # another call of this process reserved meanwhile
            fresh = now < self.fresh_until
            units = requests.slice(1.0, _usable(requests.credit, fresh)) if requests is not None else 0.0
            amount = tokens_.slice(cost, _usable(tokens_.credit, fresh)) if tokens_ is not None else 0.0
        try:
            if units or amount:
                row = allowance_reserve(self.endpoint_id, now=now, requests=(requests, units), tokens=(tokens_, amount))
            else:  # no limits: only the pause is read
                row = allowance_read(self.endpoint_id)
        except Exception:  # the database is away: keep calling on this process's own limits
            logger.warning("rate limits of endpoint %s: the shared allowance could not be read", self.endpoint_id,
                           exc_info=True)
            row = (now, now, 0.0)
        self._granted(row, now, fresh, (requests, units), (tokens_, amount))

    def _granted(self, row: tuple[float, float, float], now: float, fresh: bool,
                 requests: tuple[_Bucket | None, float], tokens_: tuple[_Bucket | None, float]) -> None:
        request_tat, token_tat, paused_until = row
        with self.lock:
            start = max(now, paused_until)
            for (bucket, amount), current, tat in ((requests, self.requests, request_tat),
                                                   (tokens_, self.tokens, token_tat)):
                if bucket is None or bucket is not current:
                    continue  # the limits changed meanwhile: the next call reserves afresh
                if not fresh:
                    bucket.credit = min(bucket.credit, 0.0)  # an old slice is dropped; a debt is kept
                bucket.credit += amount
                if amount:
                    start = max(start, tat - bucket.capacity / bucket.rate)
            self.grant_start = max(self.grant_start, start) if fresh else start
            self.fresh_until = max(start, now) + SLICE_SECONDS * 1.5
        self.pause_here(paused_until)


def _usable(credit: float, fresh: bool) -> float:
    """Reserved units still to use: none of a slice past its time, but a debt always."""
    return credit if fresh else min(credit, 0.0)


def estimated_tokens(request: dict[str, Any]) -> int:
    """What a request may use at most, before the server says: its prompt, and its answer's limit."""
    messages = request.get("messages") or []
    try:
        prompt = tokens.count_messages(messages, request.get("model") or "")
    except (TypeError, AttributeError):  # content in parts: about four characters a token
        prompt = len(str(messages)) // 4
    answer = request.get("max_completion_tokens") or request.get("max_tokens")
    if not isinstance(answer, int) or answer <= 0:
        answer = DEFAULT_COMPLETION_TOKENS
    n = request.get("n")
    return prompt + answer * (n if isinstance(n, int) and n > 0 else 1)


# --- one pacer per endpoint in this process --------------------------------------------------
_pacers: dict[int, Pacer] = {}
_pacers_lock = threading.Lock()
_shared: list[bool] = []  # LLM_RATE_LIMIT_SHARED, read once


def shared() -> bool:
    if not _shared:
        _shared.append(bool(settings.LLM_RATE_LIMIT_SHARED))
    return _shared[0]


def pacer_for(config: EndpointConfig) -> Pacer | None:
    """The endpoint's pacer; None (nothing to wait for) when it has no limits and was never paused."""
    pacer = _pacers.get(config.id)
    if pacer is None:
        if config.requests_per_minute is None and config.tokens_per_minute is None and not shared():
            return None
        pacer = _pacer(config.id)
    pacer.configure(config.requests_per_minute, config.tokens_per_minute)
    return pacer


def _pacer(endpoint_id: int) -> Pacer:
    with _pacers_lock:
        pacer = _pacers.get(endpoint_id)
        if pacer is None:
            pacer = _pacers[endpoint_id] = Pacer(endpoint_id, shared=shared())
        return pacer


async def pause(config: EndpointConfig, seconds: float) -> None:
    """Pause the endpoint for everyone: at once in this process, and through the row for the others."""
    until = time.time() + seconds
    pacer = _pacers.get(config.id) or _pacer(config.id)
    pacer.configure(config.requests_per_minute, config.tokens_per_minute)
    await pacer.pause(until)


def paused_until(config: EndpointConfig) -> float:
    """Until when (epoch seconds) this process holds calls to the endpoint back; 0 when it does not."""
    pacer = _pacers.get(config.id)
    return pacer.paused_until if pacer is not None else 0.0


def forget(endpoint_id: int | None = None) -> None:
    """Drop this process's pacers (tests; None: all)."""
    with _pacers_lock:
        for key in [key for key in _pacers if endpoint_id in (None, key)]:
            del _pacers[key]
    _shared.clear()


# --- the shared row ----------------------------------------------------------------------------
# One thread for the row's statements: reservations of a process queue there instead of racing.
_executor: list[ThreadPoolExecutor] = []
_executor_lock = threading.Lock()


async def _in_db_thread(function: Any, *args: Any) -> Any:
    with _executor_lock:
        if not _executor:
            _executor.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm-ratelimit"))
    return await asyncio.get_running_loop().run_in_executor(_executor[0], function, *args)


def close_connections() -> None:
    """Close the database thread's connection (before a test database is flushed or dropped)."""
    if _executor:
        _executor[0].submit(connections.close_all).result()


def _greatest() -> str:
    return "GREATEST" if connection.vendor == "postgresql" else "MAX"


def allowance_reserve(endpoint_id: int, *, now: float, requests: tuple[_Bucket | None, float],
                      tokens: tuple[_Bucket | None, float]) -> tuple[float, float, float]:
    """Take `requests` and `tokens` units from the endpoint's row in one statement: the row's new
    request and token `tat` and its pause. Units are granted from max(now, tat - burst, pause)."""
    close_old_connections()
    steps = [(amount / bucket.rate) if bucket is not None else 0.0 for bucket, amount in (requests, tokens)]
    greatest = _greatest()
    sql = (f"UPDATE llm_endpointallowance SET request_tat = {greatest}(request_tat, %s, paused_until) + %s, "
           f"token_tat = {greatest}(token_tat, %s, paused_until) + %s WHERE endpoint_id = %s "
           "RETURNING request_tat, token_tat, paused_until")
    params = [now, steps[0], now, steps[1], endpoint_id]
    row = execute(connection, sql, params, lambda cursor: cursor.fetchone())
    if row is None:
        _allowance_create(endpoint_id)
        row = execute(connection, sql, params, lambda cursor: cursor.fetchone())
    return float(row[0]), float(row[1]), float(row[2])


def allowance_read(endpoint_id: int) -> tuple[float, float, float]:
    close_old_connections()
    row = execute(connection, "SELECT request_tat, token_tat, paused_until FROM llm_endpointallowance "
                  "WHERE endpoint_id = %s", [endpoint_id], lambda cursor: cursor.fetchone())
    return (float(row[0]), float(row[1]), float(row[2])) if row is not None else (0.0, 0.0, 0.0)


def _allowance_create(endpoint_id: int) -> None:
    from llm.models import EndpointAllowance

    EndpointAllowance.objects.bulk_create([EndpointAllowance(endpoint_id=endpoint_id)], ignore_conflicts=True)


def _pause_row(pacer: Pacer, until: float) -> None:
    """Write the pause to the row; its allowance restarts nearly empty when the pause ends."""
    tats = [bucket.resumed_tat(until) if bucket is not None else until for bucket in (pacer.requests, pacer.tokens)]
    greatest = _greatest()
    sql = (f"UPDATE llm_endpointallowance SET paused_until = {greatest}(paused_until, %s), "
           f"request_tat = {greatest}(request_tat, %s), token_tat = {greatest}(token_tat, %s) WHERE endpoint_id = %s")
    params = [until, *tats, pacer.endpoint_id]
    try:
        close_old_connections()
        if not execute(connection, sql, params, lambda cursor: cursor.rowcount):
            _allowance_create(pacer.endpoint_id)
            execute(connection, sql, params, lambda cursor: cursor.rowcount)
    except Exception:  # the pause still holds in this process
        logger.warning("rate limits of endpoint %s: the pause could not be shared", pacer.endpoint_id, exc_info=True)
