"""Loaded with -p before Django is set up: test defaults for the environment."""
import os
import tempfile

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
# A real file (not :memory:) so that server processes started by tests share the test database.
os.environ.setdefault("TEST_DATABASE_NAME", os.path.join(tempfile.mkdtemp(prefix="orch-test-"), "test.sqlite3"))
os.environ.setdefault("RUNS_HEARTBEAT_SECONDS", "0.5")
