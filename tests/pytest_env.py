"""Loaded with -p before Django is set up: test defaults for the environment."""
import os
import tempfile

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
# A real file (not :memory:) so that server processes started by tests share the test database.
os.environ.setdefault("TEST_DATABASE_NAME", os.path.join(tempfile.mkdtemp(prefix="orch-test-"), "test.sqlite3"))
os.environ.setdefault("RUNS_HEARTBEAT_SECONDS", "0.5")
# Distributed mode (make test-distributed): real PostgreSQL and Redis, started before Django
# reads its settings, and RUNS_BACKEND=procrastinate (tests/scaleout/servers.py).
if os.environ.get("DISTRIBUTED_TESTS") == "1":
    pytest_plugins = ["tests.scaleout.servers"]
