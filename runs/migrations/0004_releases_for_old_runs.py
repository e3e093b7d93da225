"""Every run made before releases gets one, built from its own snapshot (runs with the same tree share it)."""
from django.db import migrations

from releases.rebuild import releases_from_run_snapshots


def forwards(apps, schema_editor):  # noqa: ANN001, ANN201
    releases_from_run_snapshots(registry=apps)


class Migration(migrations.Migration):

    dependencies = [('runs', '0003_run_label_run_release'), ('workflows', '0003_initial_versions'),
                    ('blocks', '0003_initial_versions'), ('payloads', '0004_initial_versions')]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
