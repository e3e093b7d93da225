"""SQLite with one writer at a time per process, queued on a Python lock.

With BEGIN IMMEDIATE, a second writer waits in SQLite's busy handler, which sleeps in growing
steps (up to 100 ms) and leaves the database idle while it sleeps. Here the threads of one
process (request threads and the runner's ledger thread) queue on a lock that wakes the next
writer the moment the previous one commits. Other processes still meet the busy handler. The
wait is bounded by the busy timeout, after which the transaction proceeds and SQLite decides.
"""
import threading
from typing import Any

from django.db.backends.sqlite3 import base

_write_lock = threading.Lock()


class DatabaseWrapper(base.DatabaseWrapper):
    _holds_write_lock = False

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
            return super()._close()
        finally:
            self._release_write_lock()
