"""Where templates are rendered: inline when plain, else in a worker process with hard limits.

A plain template (text, variables, conditions and a few linear filters; templating.is_plain) costs
about what its variables weigh, so it is rendered in the caller's thread, even on the event loop:
most prompts are plain and pay nothing. Any other template (loops, calls, operators, macros) is
rendered in one of TEMPLATE_WORKERS child processes: the sandbox's own budget stops it first, and
the process is the backstop it cannot escape (an address-space limit of TEMPLATE_MAX_MEMORY_MB, a
kill one second after TEMPLATE_MAX_SECONDS), while the server's event loop and GIL stay free.

The parent and a worker speak one JSON line each way: {"sources", "variables", "limits"} in,
{"texts"} or {"error", "index"} out. Run as `python -m blocks.render_workers <memory MB>`.
"""
from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings

from blocks import templating

ROOT = Path(__file__).resolve().parent.parent
# A worker that has not answered this long after its own deadline is killed.
_KILL_GRACE_SECONDS = 1.0
# How long a render may wait for a free worker, in multiples of TEMPLATE_MAX_SECONDS.
_QUEUE_FACTOR = 10
_STARTUP_SECONDS = 5.0


def limits() -> templating.Limits:
    """The render budget from the settings."""
    return _limits(settings.TEMPLATE_MAX_CHARS, settings.TEMPLATE_MAX_TOTAL_CHARS, settings.TEMPLATE_MAX_SECONDS)


@lru_cache(maxsize=8)
def _limits(max_chars: int, max_total_chars: int, max_seconds: float) -> templating.Limits:
    return templating.Limits(max_chars=max_chars, max_total_chars=max_total_chars, max_seconds=max_seconds)


class _Worker:
    """One child process; used by one render at a time."""

    def __init__(self, memory_mb: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "blocks.render_workers", str(memory_mb)], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.pending = b""
        self.fresh = True  # its first job waits for Python and Jinja2 to load as well

    def ask(self, job: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """Send a job and wait for its answer; None if the worker did not answer in time or died."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(json.dumps(job, default=str).encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        line = self._read_line(self.process.stdout.fileno(), time.monotonic() + timeout)
        return json.loads(line) if line is not None else None

    def _read_line(self, fd: int, deadline: float) -> bytes | None:
        while b"\n" not in self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return None
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


class _Pool:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: list[_Worker] = []
        self.slots: threading.Semaphore | None = None

    def _slots(self) -> threading.Semaphore:
        with self.lock:
            if self.slots is None:
                self.slots = threading.BoundedSemaphore(settings.TEMPLATE_WORKERS)
            return self.slots

    def render(self, sources: list[str], variables: dict[str, Any], budget: templating.Limits) -> list[str]:
        slots = self._slots()
        if not slots.acquire(timeout=budget.max_seconds * _QUEUE_FACTOR):
            raise templating.TemplateProblem("every template worker is busy (TEMPLATE_WORKERS); try again")
        try:
            return self._render_in_worker(sources, variables, budget)
        finally:
            slots.release()

    def _render_in_worker(self, sources: list[str], variables: dict[str, Any], budget: templating.Limits) -> list[str]:
        with self.lock:
            worker = self.idle.pop() if self.idle else None
        if worker is None or worker.process.poll() is not None:
            worker = _Worker(settings.TEMPLATE_MAX_MEMORY_MB)
        timeout = budget.max_seconds + _KILL_GRACE_SECONDS + (_STARTUP_SECONDS if worker.fresh else 0.0)
        worker.fresh = False
        answer = worker.ask({"sources": sources, "variables": variables, "limits": asdict(budget)}, timeout)
        if answer is None:
            died = worker.process.poll() is not None
            worker.kill()
            raise templating.TemplateProblem("the template needs too much memory (TEMPLATE_MAX_MEMORY_MB)" if died
                                             else templating.too_slow_message(budget.max_seconds))
        with self.lock:
            self.idle.append(worker)
        if "error" in answer:
            raise templating.TemplateProblem(answer["error"], index=answer["index"])
        return answer["texts"]


_pool = _Pool()
# Async callers wait for a worker in a thread of their own, never on the event loop.
_waiters = ThreadPoolExecutor(max_workers=32, thread_name_prefix="template-render")


def render_blocks(sources: list[str], variables: dict[str, Any]) -> list[str]:
    """Render the templates under one budget; raises TemplateProblem naming the failing index."""
    budget = limits()
    if all(templating.is_plain(source) for source in sources):
        return templating.render_many(sources, variables, budget)
    return _pool.render(sources, variables, budget)


async def arender_blocks(sources: list[str], variables: dict[str, Any]) -> list[str]:
    """render_blocks for async code: plain templates inline, others without blocking the loop."""
    budget = limits()
    if all(templating.is_plain(source) for source in sources):
        return templating.render_many(sources, variables, budget)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_waiters, _pool.render, sources, variables, budget)


def _serve(memory_mb: int) -> None:
    """The worker's loop: one job per line on stdin, one answer per line on stdout, until EOF."""
    import resource

    os.nice(19)  # the server's own requests and event loop come first on a busy machine
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for line in sys.stdin.buffer:
        job = json.loads(line)
        try:
            answer: dict[str, Any] = {"texts": templating.render_many(
                job["sources"], job["variables"], templating.Limits(**job["limits"]))}
        except templating.TemplateProblem as exc:
            answer = {"error": str(exc), "index": exc.index}
        except MemoryError:
            answer = {"error": "the template needs too much memory (TEMPLATE_MAX_MEMORY_MB)", "index": 0}
        sys.stdout.buffer.write(json.dumps(answer).encode() + b"\n")
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
