"""Every existing block gets its v1, message "initial version"."""
from django.db import migrations

from blocks.services import block_versions_initial


def forwards(apps, schema_editor):  # noqa: ANN001, ANN201
    block_versions_initial(registry=apps)


class Migration(migrations.Migration):

    dependencies = [('blocks', '0002_blockversion')]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
