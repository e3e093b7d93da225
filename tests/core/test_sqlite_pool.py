"""The SQLite backend's connection pool: closed connections are reused, never across a transaction
or a replaced database file."""
import os
import shutil
from pathlib import Path

import pytest
from django.db import transaction

from core.sqlite_backend import base


def _reopen(db: base.DatabaseWrapper) -> object:
    db.close()
    db.ensure_connection()
    return db.connection


def test_a_closed_connection_is_reused_by_the_next_one(file_db: base.DatabaseWrapper) -> None:
    file_db.ensure_connection()
    first = file_db.connection
    assert _reopen(file_db) is first
    with file_db.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_a_reused_connection_keeps_foreign_keys_on(file_db: base.DatabaseWrapper) -> None:
    file_db.ensure_connection()
    file_db.connection.execute("PRAGMA foreign_keys = OFF")
    _reopen(file_db)
    assert file_db.connection.execute("PRAGMA foreign_keys").fetchone() == (1,)


def test_a_connection_closed_inside_a_transaction_is_not_pooled(file_db: base.DatabaseWrapper) -> None:
    file_db.ensure_connection()
    first = file_db.connection
    with pytest.raises(RuntimeError), transaction.atomic(using="pool_test"):
        file_db.connection.execute("CREATE TABLE t (x)")
        file_db.close()  # Django keeps the connection for the block; it must not be lent out meanwhile
        assert base._pool.get(file_db.settings_dict["NAME"], []) == []
        raise RuntimeError("leave the block")
    file_db.close()
    file_db.ensure_connection()
    assert file_db.connection is not first


def test_a_connection_to_a_replaced_file_is_not_reused(file_db: base.DatabaseWrapper, tmp_path: Path) -> None:
    file_db.ensure_connection()
    file_db.connection.execute("CREATE TABLE marker (x)")
    first = file_db.connection
    file_db.close()
    # A restored backup: the same path, another file.
    shutil.copyfile(file_db.settings_dict["NAME"], tmp_path / "backup.sqlite3")
    os.replace(tmp_path / "backup.sqlite3", file_db.settings_dict["NAME"])
    file_db.ensure_connection()
    assert file_db.connection is not first


def test_the_pool_holds_at_most_pool_size_connections(file_db: base.DatabaseWrapper) -> None:
    name = file_db.settings_dict["NAME"]
    wrappers = [base.DatabaseWrapper(file_db.settings_dict, alias="pool_test") for _ in range(base.POOL_SIZE + 3)]
    for wrapper in wrappers:
        wrapper.ensure_connection()
    for wrapper in wrappers:
        wrapper.close()
    assert len(base._pool[name]) == base.POOL_SIZE
