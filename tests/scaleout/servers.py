"""Real PostgreSQL and Redis servers for the distributed-mode test session.

Loaded as a pytest plugin by tests/pytest_env.py when DISTRIBUTED_TESTS=1 (`make test-distributed`).
Under pytest-xdist each worker process starts servers of its own; the controller starts none.
The servers must be up before pytest-django reads the settings, so they start in a wrapper of
pytest_load_initial_conftests and set DATABASE_URL, REDIS_URL and RUNS_BACKEND for the session.
Debian's `postgresql` and `redis-server` are installed with apt-get when missing.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Generator
from pathlib import Path

import pytest

DATABASE_NAME = "orch"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def ensure_installed() -> None:
    if _postgres_bin() and shutil.which("redis-server"):
        return
    if os.geteuid() != 0:
        pytest.exit("distributed tests need PostgreSQL and Redis: apt-get install -y postgresql redis-server", 2)
    subprocess.run("apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq postgresql redis-server",
                   shell=True, check=True, stdout=subprocess.DEVNULL)


class Servers:
    """A throwaway PostgreSQL cluster and Redis server on free loopback ports."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="orch-scaleout-"))
        self.pg_port = _free_port()
        self.redis_port = _free_port()
        self.redis: subprocess.Popen[bytes] | None = None
        self.pg_bin = _postgres_bin()
        # initdb refuses to run as root: the cluster belongs to the Debian `postgres` user.
        self.pg_user = "postgres" if os.geteuid() == 0 else None
        self.pg_data = self.root / "pgdata"

    @property
    def database_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.pg_port}/{DATABASE_NAME}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def _as_pg_user(self, *command: str) -> list[str]:
        return ["runuser", "-u", self.pg_user, "--", *command] if self.pg_user else list(command)

    def start(self) -> None:
        assert self.pg_bin is not None
        if self.pg_user:
            entry = pwd.getpwnam(self.pg_user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        run = {"check": True, "stdout": subprocess.DEVNULL}
        subprocess.run(self._as_pg_user(str(self.pg_bin / "initdb"), "-D", str(self.pg_data), "-U", "postgres",
                                        "--auth=trust", "--no-sync", "-E", "UTF8"), **run)  # type: ignore[call-overload]
        # Durability is not under test here (the servers die with the session): trade it for speed.
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.pg_port} -c unix_socket_directories={self.root} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        subprocess.run(self._as_pg_user(str(self.pg_bin / "pg_ctl"), "-D", str(self.pg_data), "-l",
                                        str(self.root / "postgres.log"), "-o", options, "-w", "start"), **run)  # type: ignore[call-overload]
        subprocess.run(self._as_pg_user(str(self.pg_bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.pg_port),
                                        "-U", "postgres", DATABASE_NAME), **run)  # type: ignore[call-overload]
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root)],
            stdout=open(self.root / "redis.log", "wb"), stderr=subprocess.STDOUT,
        )
        _wait_for_port(self.redis_port)

    def stop(self) -> None:
        if self.redis and self.redis.poll() is None:
            self.redis.terminate()
            self.redis.wait(10)
        if self.pg_bin and (self.pg_data / "postmaster.pid").exists():
            subprocess.run(self._as_pg_user(str(self.pg_bin / "pg_ctl"), "-D", str(self.pg_data), "-m", "immediate",
                                            "-w", "stop"), stdout=subprocess.DEVNULL, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


_servers: Servers | None = None


def _xdist_controller(early_config: pytest.Config) -> bool:
    """True in the pytest-xdist process that only hands tests to its workers (`-n 2`)."""
    workers = getattr(early_config.known_args_namespace, "numprocesses", None)
    return bool(workers) and "PYTEST_XDIST_WORKER" not in os.environ


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config, args: list[str]) -> Generator[None, None, None]:
    global _servers
    ensure_installed()  # once, before any xdist worker starts
    if _xdist_controller(early_config):
        return (yield)  # its workers run the tests, each on servers of its own
    _servers = Servers()
    try:
        _servers.start()
    except Exception:
        _servers.stop()
        raise
    os.environ["DATABASE_URL"] = _servers.database_url
    os.environ["REDIS_URL"] = _servers.redis_url
    os.environ["RUNS_BACKEND"] = "procrastinate"
    # The cluster is thrown away at the end: keeping the test database spares a DROP that fails
    # while a thread's connection is still open.
    args.append("--reuse-db")
    return (yield)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _servers is not None:
        _servers.stop()
