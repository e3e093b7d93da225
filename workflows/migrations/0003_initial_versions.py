"""Every existing workflow gets its v1, message "initial version"."""
from django.db import migrations

from workflows.services import workflow_versions_initial


def forwards(apps, schema_editor):  # noqa: ANN001, ANN201
    workflow_versions_initial(registry=apps)


class Migration(migrations.Migration):

    dependencies = [('workflows', '0002_workflowversion'), ('payloads', '0004_initial_versions')]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
