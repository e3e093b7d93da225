"""SQLite with one writer at a time per process, queued on a Python lock.

With BEGIN IMMEDIATE, a second writer waits in SQLite's busy handler, which sleeps in growing
steps (up to 100 ms) and leaves the database idle while it sleeps. Here the threads of one
process (request threads and the runner's ledger thread) queue on a lock that wakes the next
writer the moment the previous one commits. Other processes still meet the busy handler. The
wait is bounded by the busy timeout, after which the transaction proceeds and SQLite decides.

Connections to a database file are pooled in the process. Under ASGI, Django gives every request a
connection of its own and closes it at the end; opening one (SQL functions registered, PRAGMAs) costs
more than the queries of a typical API request (docs/performance.md). A closed connection
goes back to the pool instead, unless a transaction is still open on it or its file was replaced.

Framework internals: this module overrides the private hooks `_start_transaction_under_autocommit`
(sqlite3 backend), `_commit`, `_rollback` and `_close` (BaseDatabaseWrapper) and reads
`in_atomic_block`, as of Django 5.2.19; Django calls them on every BEGIN, COMMIT, ROLLBACK and close.
tests/core/internals/test_sqlite_backend.py fails if they are renamed or stop being called.
"""
import os
import sqlite3
import threading
from typing import Any

from django.db.backends.sqlite3 import base

_write_lock = threading.Lock()
# Idle connections per database file, at most POOL_SIZE each, with the (device, inode) they were
# opened on: a connection to a deleted or replaced file (tests, a restored backup) is never reused.
POOL_SIZE = 16
_pool: dict[str, list[tuple[tuple[int, int], sqlite3.Connection]]] = {}
_pool_lock = threading.Lock()


def _file_identity(name: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(name)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _forget_pool_in_child() -> None:
    # A forked child must not share its parent's SQLite connections (nor a lock held at the fork).
    global _pool_lock
    _pool.clear()
    _pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_in_child)


class DatabaseWrapper(base.DatabaseWrapper):
    _holds_write_lock = False
    _pool_identity: tuple[int, int] | None = None

    def get_new_connection(self, conn_params: dict[str, Any]) -> sqlite3.Connection:
        name = str(conn_params["database"])
        identity = None if self.is_in_memory_db() else _file_identity(name)
        if identity is not None:
            with _pool_lock:
                idle = _pool.get(name, [])
                while idle:
                    pooled_identity, connection = idle.pop()
                    if pooled_identity == identity:
                        self._pool_identity = identity
                        # As Django opens every connection: a migration may have turned it off.
                        connection.execute("PRAGMA foreign_keys = ON")
                        return connection
                    connection.close()
        connection = super().get_new_connection(conn_params)
        if identity is None and not self.is_in_memory_db():
            identity = _file_identity(name)  # opening created the missing file
            # So freed pages can be handed back (runs.retention). The init command's WAL switch has
            # written the header already, so the mode takes a VACUUM, instant on an empty file.
            connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
            connection.execute("VACUUM")
        self._pool_identity = identity
        return connection

    def _start_transaction_under_autocommit(self) -> None:
        timeout = float(self.settings_dict.get("OPTIONS", {}).get("timeout", 5))
        self._holds_write_lock = _write_lock.acquire(timeout=timeout)
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_write_lock()
            raise

    def _release_write_lock(self) -> None:
        if self._holds_write_lock:
            self._holds_write_lock = False
            _write_lock.release()

    def _commit(self) -> Any:
        try:
            return super()._commit()
        finally:
            self._release_write_lock()

    def _rollback(self) -> Any:
        try:
            return super()._rollback()
        finally:
            self._release_write_lock()

    def _close(self) -> Any:
        try:
            if not self._return_to_pool():
                return super()._close()
        finally:
            self._release_write_lock()

    def _return_to_pool(self) -> bool:
        connection, identity = self.connection, self._pool_identity
        # Closed inside atomic(), Django keeps using the connection until the block exits.
        if connection is None or identity is None or self.in_atomic_block or connection.in_transaction:
            return False
        name = str(self.settings_dict["NAME"])
        if _file_identity(name) != identity:
            return False
        with _pool_lock:
            idle = _pool.setdefault(name, [])
            if len(idle) >= POOL_SIZE:
                return False
            idle.append((identity, connection))
        return True
