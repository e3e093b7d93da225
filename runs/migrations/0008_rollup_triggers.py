"""The database keeps runs_runrollup and runs_steprollup: a trigger adds a run (and its steps) in
the statement that makes it final, or when it is inserted final (an import, a copy). Then every
run already final is counted once (`manage.py rebuild_run_stats` does the same at any time).
The SQL is runs/triggers.py."""
from django.db import migrations


def create(apps, schema_editor):  # noqa: ANN001, ANN201
    from runs.migrations import _triggers_0012 as triggers
    triggers.rollups_create(schema_editor)


def drop(apps, schema_editor):  # noqa: ANN001, ANN201
    from runs.migrations import _triggers_0012 as triggers
    triggers.rollups_drop(schema_editor)


def count_existing(apps, schema_editor):  # noqa: ANN001, ANN201
    from runs.rollups import rollups_rebuild
    rollups_rebuild(registry=apps)


class Migration(migrations.Migration):

    dependencies = [('runs', '0007_rollups')]

    operations = [migrations.RunPython(create, drop), migrations.RunPython(count_existing, migrations.RunPython.noop)]
