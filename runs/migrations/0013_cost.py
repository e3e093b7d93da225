"""Cost (issue 19): each response records what it cost and where that came from; a run can carry a
cost cap and stop with the new final status "budget"; the step rollup sums cost per currency.

The triggers and PostgreSQL's search index name the final statuses and the rollup's key, so they
are dropped first and made again last (runs/triggers.py). The new columns of runs_run and
runs_response are nullable: SQLite adds them without rebuilding either table. Steps recorded
before now have no cost (NULL source): the rollups count them as unpriced until `manage.py reprice`.
"""

from django.conf import settings
from django.db import migrations, models


def triggers_drop(apps, schema_editor):  # noqa: ANN001, ANN201
    from runs import triggers
    triggers.all_drop(schema_editor)


def triggers_create(apps, schema_editor):  # noqa: ANN001, ANN201
    from runs import triggers
    triggers.all_create(schema_editor)


def triggers_0012_create(apps, schema_editor):  # noqa: ANN001, ANN201
    """Back to 0012: its own triggers (no cost columns, no "budget" status)."""
    from runs.migrations import _triggers_0012 as old
    old.sqlite_triggers_create(schema_editor)
    old.run(schema_editor, {"postgresql": [*old.ROLLUP_POSTGRES, *old.SEARCH_POSTGRES]})


def step_rollups_empty(apps, schema_editor):  # noqa: ANN001, ANN201
    """Back to 0012: one hour's rows of several currencies would collide on the old key; emptied, then rebuilt."""
    apps.get_model("runs", "StepRollup").objects.all().delete()


def rollups_rebuild(apps, schema_editor):  # noqa: ANN001, ANN201
    from runs.rollups import rollups_rebuild
    rollups_rebuild(registry=apps)


def earlier_steps_unpriced(apps, schema_editor):  # noqa: ANN001, ANN201
    apps.get_model("runs", "StepRollup").objects.update(unpriced=models.F("steps"))


class Migration(migrations.Migration):

    dependencies = [
        ('releases', '0001_initial'),
        ('runs', '0012_partial_and_fewer_indexes'),
        ('workflows', '0004_workflow_budget'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(migrations.RunPython.noop, rollups_rebuild),
        migrations.RunPython(triggers_drop, triggers_0012_create),
        migrations.RemoveConstraint(
            model_name='steprollup',
            name='step_rollup_key',
        ),
        migrations.RunPython(migrations.RunPython.noop, step_rollups_empty),
        migrations.RemoveIndex(
            model_name='run',
            name='run_finished',
        ),
        migrations.RemoveIndex(
            model_name='run',
            name='run_latency',
        ),
        migrations.AddField(
            model_name='response',
            name='cost_currency',
            field=models.CharField(blank=True, max_length=3, null=True),
        ),
        migrations.AddField(
            model_name='response',
            name='cost_nano',
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='response',
            name='cost_note',
            field=models.TextField(blank=True, help_text='Which price, or why there is none.', null=True),
        ),
        migrations.AddField(
            model_name='response',
            name='cost_source',
            field=models.CharField(blank=True, choices=[('reported', 'Reported by the server'), ('computed', 'Computed from a price'), ('free', 'Free'), ('unknown', 'Unknown')], max_length=10, null=True),
        ),
        migrations.AddField(
            model_name='response',
            name='price_id',
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='response',
            name='price_version',
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='run',
            name='budget_currency',
            field=models.CharField(blank=True, max_length=3, null=True),
        ),
        migrations.AddField(
            model_name='run',
            name='budget_nano',
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='steprollup',
            name='cost_currency',
            field=models.CharField(blank=True, default='', max_length=3),
        ),
        migrations.AddField(
            model_name='steprollup',
            name='cost_nano',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='steprollup',
            name='unpriced',
            field=models.PositiveIntegerField(default=0, help_text='Steps whose cost is unknown (not in cost_nano).'),
        ),
        migrations.AlterField(
            model_name='run',
            name='status',
            field=models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelling', 'Cancelling'), ('cancelled', 'Cancelled'), ('budget', 'Budget reached')], default='queued', max_length=12),
        ),
        migrations.AlterField(
            model_name='runrollup',
            name='status',
            field=models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelling', 'Cancelling'), ('cancelled', 'Cancelled'), ('budget', 'Budget reached')], max_length=12),
        ),
        migrations.AddIndex(
            model_name='run',
            index=models.Index(condition=models.Q(('status__in', ('succeeded', 'failed', 'cancelled', 'budget'))), fields=['finished_at', 'id'], name='run_finished'),
        ),
        migrations.AddIndex(
            model_name='run',
            index=models.Index(condition=models.Q(('status__in', ('succeeded', 'failed', 'cancelled', 'budget'))), fields=['latency_ms', 'id'], name='run_latency'),
        ),
        migrations.AddConstraint(
            model_name='steprollup',
            constraint=models.UniqueConstraint(fields=('workflow', 'hour', 'endpoint_name', 'model', 'cost_currency'), name='step_rollup_key'),
        ),
        migrations.RunPython(earlier_steps_unpriced, migrations.RunPython.noop),
        migrations.RunPython(triggers_create, triggers_drop),
    ]
