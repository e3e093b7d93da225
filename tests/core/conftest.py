"""Fixtures of the core tests."""
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection, connections

from core.sqlite_backend import base


@pytest.fixture
def file_db(tmp_path: Path, django_db_blocker) -> Iterator[base.DatabaseWrapper]:  # type: ignore[no-untyped-def]
    """A second connection of the project's backend, on a database file of its own."""
    settings = {**connection.settings_dict, "NAME": str(tmp_path / "pool.sqlite3"), "TEST": {}}
    wrapper = base.DatabaseWrapper(settings, alias="pool_test")
    connections["pool_test"] = wrapper  # for transaction.atomic(using=...)
    with django_db_blocker.unblock():
        yield wrapper
        wrapper.close()
    del connections["pool_test"]
    for _, idle in base._pool.pop(settings["NAME"], []):
        idle.close()
