"""Start the real app server (daphne) in a subprocess on the test database."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from tests.fake_llm import free_port, wait_for_http, wait_for_port

ROOT = Path(__file__).resolve().parent.parent


def shared_database_url() -> str:
    db = settings.DATABASES["default"]
    if "sqlite" in db["ENGINE"]:
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


class AppServer:
    """daphne serving orchestrator.asgi on the test database, with the embedded executor."""

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "DATABASE_URL": shared_database_url(), "DEBUG": "1", **env}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, wait_for_http_ready: bool = True) -> AppServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "orchestrator.asgi:application"],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL,
        )
        if wait_for_http_ready:
            wait_for_http(f"{self.url}/healthz")
        else:
            wait_for_port(self.port)
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def api(url: str, token: str, method: str = "GET", body: object | None = None) -> tuple[int, dict]:
    """One JSON request to the app with token auth; returns (status, body)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url, method=method, data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)
