"""Every existing payload gets its v1, message "initial version"."""
from django.db import migrations

from payloads.services import payload_versions_initial


def forwards(apps, schema_editor):  # noqa: ANN001, ANN201
    payload_versions_initial(registry=apps)


class Migration(migrations.Migration):

    dependencies = [('payloads', '0003_payloadversion'), ('blocks', '0003_initial_versions')]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
