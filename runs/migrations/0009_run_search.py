"""Full-text search over finished runs: their workflow name, inputs, output and error.

SQLite: an FTS5 table over runs_run (external content: the text is not stored twice), filled by
a trigger when a run becomes final (or is inserted final) and emptied of a run when it is
deleted. PostgreSQL: a GIN index on the same text's tsvector, which runs.search matches with
the identical expression. Runs already final are indexed here. The SQL is runs/triggers.py.
"""
from django.db import migrations


def create(apps, schema_editor):  # noqa: ANN001, ANN201
    from runs.migrations import _triggers_0012 as triggers
    triggers.search_create(schema_editor)


def drop(apps, schema_editor):  # noqa: ANN001, ANN201
    from runs.migrations import _triggers_0012 as triggers
    triggers.search_drop(schema_editor)


class Migration(migrations.Migration):

    dependencies = [('runs', '0008_rollup_triggers')]

    operations = [migrations.RunPython(create, drop)]
