"""The project's fake OpenAI-compatible server, run in its own process for tests (real HTTP)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from fakellm.server import reply_text

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["FakeLLM", "free_port", "reply_text"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    """Wait until something accepts TCP connections, without sending a request."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class FakeLLM:
    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/v1"
        self.process = subprocess.Popen(
            # Echo replies, which reply_text() predicts; a later "--replies readable" in args wins.
            [sys.executable, "manage.py", "fake_llm", "--port", str(self.port), "--replies", "echo", *args],
            cwd=ROOT, env={**os.environ}, stdout=subprocess.DEVNULL,
        )
        wait_for_http(f"{self.url}/health")

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(f"{self.url}{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)

    def control(self, **settings: Any) -> None:
        self._post("/_control", settings)

    def fail_next(self, *faults: dict[str, Any]) -> None:
        self._post("/_control", {"faults": list(faults)})

    def reset(self) -> None:
        self._post("/_reset", {})

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_stats", timeout=5) as response:
            return json.load(response)

    def requests_logged(self) -> list[tuple[float, str]]:
        """(arrival time, prompt) of every chat request since `control(log_requests=True)`."""
        with urllib.request.urlopen(f"{self.url}/_requests", timeout=30) as response:
            return [(at, prompt) for at, prompt in json.load(response)["requests"]]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
