"""Map items (issue 22): a response may be one item of a step that maps over a list, so a step's
row is unique by (run, index, item), item 0 being the step itself; and a step may be skipped.

SQLite rebuilds runs_response for the new constraint; the rollup trigger on runs_run reads
runs_response, so the triggers are dropped first and made again last (runs/triggers.py).
"""

from django.db import migrations, models


def sqlite_triggers_drop(apps, schema_editor):  # noqa: ANN001, ANN201
    from runs import triggers
    triggers.sqlite_triggers_drop(schema_editor)


def sqlite_triggers_create(apps, schema_editor):  # noqa: ANN001, ANN201
    from runs import triggers
    triggers.sqlite_triggers_create(schema_editor)


class Migration(migrations.Migration):

    dependencies = [
        ('runs', '0014_reprice_jobs'),
    ]

    operations = [
        migrations.RunPython(sqlite_triggers_drop, sqlite_triggers_create),
        migrations.AlterModelOptions(
            name='response',
            options={'ordering': ['run', 'index', 'item']},
        ),
        migrations.RemoveConstraint(
            model_name='response',
            name='one_response_per_step',
        ),
        migrations.AddField(
            model_name='response',
            name='item',
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name='response',
            name='item_value',
            field=models.JSONField(blank=True, help_text='The list item this call was made for.', null=True),
        ),
        migrations.AlterField(
            model_name='response',
            name='status',
            field=models.CharField(choices=[('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled'), ('copied', 'Copied'), ('skipped', 'Skipped')], max_length=10),
        ),
        migrations.AddConstraint(
            model_name='response',
            constraint=models.UniqueConstraint(fields=('run', 'index', 'item'), name='one_response_per_step_item'),
        ),
        migrations.RunPython(sqlite_triggers_create, sqlite_triggers_drop),
    ]
