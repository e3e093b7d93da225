"""A step's messages and output are stored compressed (core/fields.py): the rows of a million runs
of one workflow no longer carry a million full copies of its system prompt. Existing rows are
converted in batches."""
from django.db import migrations

import core.fields

BATCH = 2000


def pack_existing(apps, schema_editor):  # noqa: ANN001, ANN201
    Response = apps.get_model("runs", "Response")
    last = 0
    while True:
        rows = list(Response.objects.filter(pk__gt=last).order_by("pk").values_list("pk", "messages", "output")[:BATCH])
        if not rows:
            return
        Response.objects.bulk_update([Response(pk=pk, messages_packed=messages, output_packed=output)
                                      for pk, messages, output in rows], ["messages_packed", "output_packed"])
        last = rows[-1][0]


def triggers_drop(apps, schema_editor):  # noqa: ANN001, ANN201
    from runs.migrations import _triggers_0012 as triggers
    triggers.sqlite_triggers_drop(schema_editor)


def triggers_create(apps, schema_editor):  # noqa: ANN001, ANN201
    from runs.migrations import _triggers_0012 as triggers
    triggers.sqlite_triggers_create(schema_editor)


class Migration(migrations.Migration):

    dependencies = [('runs', '0010_ordering_indexes')]

    operations = [
        # SQLite rebuilds runs_response below; a trigger naming a table mid-rebuild breaks it.
        migrations.RunPython(triggers_drop, triggers_create),
        migrations.AddField('response', 'messages_packed', core.fields.CompressedJSONField(null=True)),
        migrations.AddField('response', 'output_packed', core.fields.CompressedTextField(null=True)),
        migrations.RunPython(pack_existing, migrations.RunPython.noop),
        migrations.RemoveField('response', 'messages'),
        migrations.RemoveField('response', 'output'),
        migrations.RenameField('response', 'messages_packed', 'messages'),
        migrations.RenameField('response', 'output_packed', 'output'),
        migrations.AlterField('response', 'messages', core.fields.CompressedJSONField(
            default=list, help_text='The messages sent (stored compressed).')),
        migrations.AlterField('response', 'output', core.fields.CompressedTextField(
            blank=True, default='', help_text="The answer's text (stored compressed).")),
        migrations.RunPython(triggers_create, triggers_drop),
    ]
