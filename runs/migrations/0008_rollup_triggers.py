"""The database keeps runs_runrollup and runs_steprollup: a trigger adds a run (and its steps) in
the statement that makes it final, or when it is inserted final (an import, a copy). Then every
run already final is counted once (`manage.py rebuild_run_stats` does the same at any time)."""
from django.db import migrations

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
SQLITE = [
    f"""CREATE TRIGGER runs_rollup_on_finish AFTER UPDATE OF status ON runs_run
    WHEN NEW.status IN {FINAL} AND OLD.status NOT IN {FINAL} AND NEW.workflow_id IS NOT NULL
    BEGIN {RUN_UPSERT.format(hour=SQLITE_HOUR)} END""",
    f"""CREATE TRIGGER runs_rollup_on_insert AFTER INSERT ON runs_run
    WHEN NEW.status IN {FINAL} AND NEW.workflow_id IS NOT NULL
    BEGIN {RUN_UPSERT.format(hour=SQLITE_HOUR)} END""",
]
SQLITE_DROP = ["DROP TRIGGER IF EXISTS runs_rollup_on_finish", "DROP TRIGGER IF EXISTS runs_rollup_on_insert"]

POSTGRES_HOUR = "date_trunc('hour', NEW.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
POSTGRES = [
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
POSTGRES_DROP = ["DROP TRIGGER IF EXISTS runs_rollup_on_finish ON runs_run",
                 "DROP TRIGGER IF EXISTS runs_rollup_on_insert ON runs_run", "DROP FUNCTION IF EXISTS runs_rollup_add()"]


def _run(statements: dict[str, list[str]]):  # noqa: ANN202
    def apply(apps, schema_editor):  # noqa: ANN001, ANN202
        for statement in statements.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement, params=None)
    return apply


def count_existing(apps, schema_editor):  # noqa: ANN001, ANN202
    from runs.rollups import rollups_rebuild
    rollups_rebuild(registry=apps)


class Migration(migrations.Migration):

    dependencies = [('runs', '0007_rollups')]

    operations = [
        migrations.RunPython(_run({"sqlite": SQLITE, "postgresql": POSTGRES}),
                             _run({"sqlite": SQLITE_DROP, "postgresql": POSTGRES_DROP})),
        migrations.RunPython(count_existing, migrations.RunPython.noop),
    ]
