"""Distributed mode: real Procrastinate worker processes and a real daphne on PostgreSQL + Redis.

These tests run in the session `make test-distributed` starts (DISTRIBUTED_TESTS=1, see
servers.py); in the default SQLite session they are skipped with that hint.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from tests.fake_llm import ROOT, free_port, wait_for_http


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if settings.RUNS_BACKEND == "procrastinate":
        return
    skip = pytest.mark.skip(reason="distributed mode: run with `make test-distributed` (DISTRIBUTED_TESTS=1)")
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(skip)


def process_env(**extra: str) -> dict[str, str]:
    """The environment of a worker or web process: this session's servers and its test database."""
    db = connection.settings_dict
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


class Worker:
    """`manage.py procrastinate worker` in its own process, logging to a file."""

    def __init__(self, log_path: Path, concurrency: int, env: dict[str, str]) -> None:
        self.log_path = log_path
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "procrastinate", "worker", "-c", str(concurrency)],
            cwd=ROOT, env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        wait_until(lambda: text in self.log(), timeout, f"worker {self.pid} never logged {text!r}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def wait_until(condition: Callable[[], Any], timeout: float, message: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(interval)


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start worker processes on the test database; all are stopped at the end of the test.

    Workers an earlier test killed with -9 leave their heartbeat row, and Django's flush between
    tests skips Procrastinate's tables (they are not managed by Django), so they are forgotten here:
    a test sees only its own workers.
    """
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_workers")
    workers: list[Worker] = []

    def start(concurrency: int = 50, **extra_env: str) -> Worker:
        worker = Worker(tmp_path / f"worker-{len(workers)}.log", concurrency, process_env(**extra_env))
        workers.append(worker)
        worker.wait_for_log("Starting worker on", timeout=60)
        return worker

    yield start
    for worker in workers:
        worker.stop()


class Daphne:
    def __init__(self, log_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "orchestrator.asgi:application"],
            cwd=ROOT, env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
        )
        wait_for_http(f"{self.url}/admin/login/", timeout=60)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(15)


@pytest.fixture
def daphne_server(tmp_path: Path) -> Iterator[Daphne]:
    """A web node in its own process: same database, same Redis channel layer as the workers."""
    server = Daphne(tmp_path / "daphne.log", process_env())
    yield server
    server.stop()
