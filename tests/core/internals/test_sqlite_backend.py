"""The SQLite backend's overrides of Django's private hooks are still called where it expects.

If Django renames `_start_transaction_under_autocommit`, `_commit`, `_rollback` or `_close`, or stops
calling one, the process-wide write lock would be held forever or never: these tests fail first.
"""
import pytest
from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteWrapper

from core.sqlite_backend import base


def test_the_hooks_it_overrides_exist_in_django() -> None:
    for name in ("_commit", "_rollback", "_close"):
        assert callable(getattr(BaseDatabaseWrapper, name)), name
    assert callable(SQLiteWrapper._start_transaction_under_autocommit)
    for name in ("_commit", "_rollback", "_close", "_start_transaction_under_autocommit"):
        assert name in vars(base.DatabaseWrapper), name


def test_a_write_transaction_holds_the_lock_until_commit(file_db: base.DatabaseWrapper) -> None:
    assert file_db.settings_dict["OPTIONS"].get("transaction_mode") == "IMMEDIATE"
    with transaction.atomic(using="pool_test"):
        file_db.connection.execute("CREATE TABLE t (x)")
        assert file_db._holds_write_lock and base._write_lock.locked()
    assert not file_db._holds_write_lock and not base._write_lock.locked()
    assert file_db.connection.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_a_rollback_releases_the_lock_and_undoes_the_write(file_db: base.DatabaseWrapper) -> None:
    with pytest.raises(RuntimeError), transaction.atomic(using="pool_test"):
        file_db.connection.execute("CREATE TABLE t (x)")
        assert base._write_lock.locked()
        raise RuntimeError("roll back")
    assert not file_db._holds_write_lock and not base._write_lock.locked()
    assert file_db.connection.execute("SELECT name FROM sqlite_master WHERE name = 't'").fetchone() is None


def test_close_returns_the_connection_to_the_pool(file_db: base.DatabaseWrapper) -> None:
    file_db.ensure_connection()
    first = file_db.connection
    file_db.close()
    assert [pooled for _, pooled in base._pool[file_db.settings_dict["NAME"]]] == [first]
