"""Frozen: runs/triggers.py as it was up to migration 0012, for the migrations 0008-0012 and the
reverse of 0013 (a migration must make the SQL of its own time, not today's).

The SQL the database runs by itself on runs_run: the statistics rollups (RunRollup, StepRollup) and
the full-text search index, per vendor. Migrations create them (runs 0008, 0009) and re-create them
around any migration that rebuilds runs_run or runs_response on SQLite (a rebuilt table loses its
triggers; tests/runs/test_rollups.py checks they are all there after migrating).
"""
from typing import Any

FINAL = "('succeeded', 'failed', 'cancelled')"

RUN_UPSERT = """
INSERT INTO runs_runrollup (hour, workflow_id, release_id, status, runs, prompt_tokens, completion_tokens, latency_ms)
VALUES ({hour}, NEW.workflow_id, NEW.release_id, NEW.status, 1, NEW.prompt_tokens, NEW.completion_tokens, NEW.latency_ms)
ON CONFLICT (workflow_id, hour, release_id, status) DO UPDATE SET
  runs = runs_runrollup.runs + 1,
  prompt_tokens = runs_runrollup.prompt_tokens + excluded.prompt_tokens,
  completion_tokens = runs_runrollup.completion_tokens + excluded.completion_tokens,
  latency_ms = runs_runrollup.latency_ms + excluded.latency_ms;
INSERT INTO runs_steprollup (hour, workflow_id, endpoint_name, model, steps, failed, prompt_tokens,
                             completion_tokens, latency_ms)
SELECT {hour}, NEW.workflow_id, endpoint_name, model, COUNT(*), SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END),
       SUM(prompt_tokens), SUM(completion_tokens), SUM(latency_ms)
FROM runs_response WHERE run_id = NEW.id AND status <> 'copied' GROUP BY endpoint_name, model
ON CONFLICT (workflow_id, hour, endpoint_name, model) DO UPDATE SET
  steps = runs_steprollup.steps + excluded.steps,
  failed = runs_steprollup.failed + excluded.failed,
  prompt_tokens = runs_steprollup.prompt_tokens + excluded.prompt_tokens,
  completion_tokens = runs_steprollup.completion_tokens + excluded.completion_tokens,
  latency_ms = runs_steprollup.latency_ms + excluded.latency_ms;
"""

SQLITE_HOUR = "strftime('%Y-%m-%d %H:00:00', NEW.created_at)"
ROLLUP_SQLITE = [
    f"""CREATE TRIGGER runs_rollup_on_finish AFTER UPDATE OF status ON runs_run
    WHEN NEW.status IN {FINAL} AND OLD.status NOT IN {FINAL} AND NEW.workflow_id IS NOT NULL
    BEGIN {RUN_UPSERT.format(hour=SQLITE_HOUR)} END""",
    f"""CREATE TRIGGER runs_rollup_on_insert AFTER INSERT ON runs_run
    WHEN NEW.status IN {FINAL} AND NEW.workflow_id IS NOT NULL
    BEGIN {RUN_UPSERT.format(hour=SQLITE_HOUR)} END""",
]
ROLLUP_SQLITE_DROP = ["DROP TRIGGER IF EXISTS runs_rollup_on_finish", "DROP TRIGGER IF EXISTS runs_rollup_on_insert"]

POSTGRES_HOUR = "date_trunc('hour', NEW.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
ROLLUP_POSTGRES = [
    f"""CREATE FUNCTION runs_rollup_add() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.status IN {FINAL} AND NEW.workflow_id IS NOT NULL
         AND (TG_OP = 'INSERT' OR OLD.status NOT IN {FINAL}) THEN
        {RUN_UPSERT.format(hour=POSTGRES_HOUR)}
      END IF;
      RETURN NULL;
    END $$""",
    "CREATE TRIGGER runs_rollup_on_finish AFTER UPDATE OF status ON runs_run FOR EACH ROW EXECUTE FUNCTION runs_rollup_add()",
    "CREATE TRIGGER runs_rollup_on_insert AFTER INSERT ON runs_run FOR EACH ROW EXECUTE FUNCTION runs_rollup_add()",
]
ROLLUP_POSTGRES_DROP = ["DROP TRIGGER IF EXISTS runs_rollup_on_finish ON runs_run",
                        "DROP TRIGGER IF EXISTS runs_rollup_on_insert ON runs_run", "DROP FUNCTION IF EXISTS runs_rollup_add()"]


COLUMNS = "workflow_name, inputs, output, error"
NEW = "NEW.id, NEW.workflow_name, NEW.inputs, NEW.output, NEW.error"
OLD = "OLD.id, OLD.workflow_name, OLD.inputs, OLD.output, OLD.error"

SEARCH_SQLITE = [
    f"CREATE VIRTUAL TABLE runs_run_fts USING fts5({COLUMNS}, content='runs_run', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2')",
    f"""CREATE TRIGGER runs_search_on_finish AFTER UPDATE OF status ON runs_run
    WHEN NEW.status IN {FINAL} AND OLD.status NOT IN {FINAL}
    BEGIN INSERT INTO runs_run_fts(rowid, {COLUMNS}) VALUES ({NEW}); END""",
    f"""CREATE TRIGGER runs_search_on_insert AFTER INSERT ON runs_run WHEN NEW.status IN {FINAL}
    BEGIN INSERT INTO runs_run_fts(rowid, {COLUMNS}) VALUES ({NEW}); END""",
    f"""CREATE TRIGGER runs_search_on_delete AFTER DELETE ON runs_run WHEN OLD.status IN {FINAL}
    BEGIN INSERT INTO runs_run_fts(runs_run_fts, rowid, {COLUMNS}) VALUES ('delete', {OLD}); END""",
    # A finished run's searchable text changing (an admin edit, a data fix) is re-indexed.
    f"""CREATE TRIGGER runs_search_on_change AFTER UPDATE OF {COLUMNS} ON runs_run
    WHEN OLD.status IN {FINAL} AND NEW.status IN {FINAL}
    BEGIN INSERT INTO runs_run_fts(runs_run_fts, rowid, {COLUMNS}) VALUES ('delete', {OLD});
          INSERT INTO runs_run_fts(rowid, {COLUMNS}) VALUES ({NEW}); END""",
    f"INSERT INTO runs_run_fts(rowid, {COLUMNS}) SELECT id, {COLUMNS} FROM runs_run WHERE status IN {FINAL}",
]
SEARCH_SQLITE_DROP = [*(f"DROP TRIGGER IF EXISTS runs_search_on_{name}" for name in ("finish", "insert", "delete", "change")),
                      "DROP TABLE IF EXISTS runs_run_fts"]

# runs.search matches with this very expression: the index is used only if they are identical.
POSTGRES_DOCUMENT = ("to_tsvector('simple'::regconfig, coalesce(workflow_name, '') || ' ' || coalesce(inputs::text, '') "
                     "|| ' ' || coalesce(output, '') || ' ' || coalesce(error, ''))")
SEARCH_POSTGRES = [f"CREATE INDEX runs_run_search ON runs_run USING gin ({POSTGRES_DOCUMENT}) WHERE status IN {FINAL}"]
SEARCH_POSTGRES_DROP = ["DROP INDEX IF EXISTS runs_run_search"]

TRIGGERS = {"sqlite": ["runs_rollup_on_finish", "runs_rollup_on_insert", "runs_search_on_finish", "runs_search_on_insert",
                       "runs_search_on_delete", "runs_search_on_change"],
            "postgresql": ["runs_rollup_on_finish", "runs_rollup_on_insert"]}


def run(schema_editor: Any, statements: dict[str, list[str]]) -> None:
    for statement in statements.get(schema_editor.connection.vendor, []):
        schema_editor.execute(statement, params=None)


def rollups_create(schema_editor: Any) -> None:
    run(schema_editor, {"sqlite": ROLLUP_SQLITE, "postgresql": ROLLUP_POSTGRES})


def rollups_drop(schema_editor: Any) -> None:
    run(schema_editor, {"sqlite": ROLLUP_SQLITE_DROP, "postgresql": ROLLUP_POSTGRES_DROP})


def search_create(schema_editor: Any, *, fill: bool = True) -> None:
    statements = SEARCH_SQLITE if fill else SEARCH_SQLITE[:-1]
    run(schema_editor, {"sqlite": statements, "postgresql": SEARCH_POSTGRES})


def search_drop(schema_editor: Any) -> None:
    run(schema_editor, {"sqlite": SEARCH_SQLITE_DROP, "postgresql": SEARCH_POSTGRES_DROP})


def sqlite_triggers_drop(schema_editor: Any) -> None:
    """Before SQLite rebuilds runs_run or runs_response: the triggers (not the search table's rows)."""
    if schema_editor.connection.vendor == "sqlite":
        for name in TRIGGERS["sqlite"]:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}", params=None)


def sqlite_triggers_create(schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "sqlite":
        run(schema_editor, {"sqlite": [*ROLLUP_SQLITE, *(s for s in SEARCH_SQLITE if s.startswith("CREATE TRIGGER"))]})
