"""A run refers to its release for what it runs instead of carrying its own copy of the snapshot
(about 3 KB per run). Every run has a release since 0004."""
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [('runs', '0005_list_indexes'), ('releases', '0001_initial')]

    operations = [
        migrations.RemoveField(model_name='run', name='snapshot'),
        migrations.AlterField(
            model_name='run', name='release',
            field=models.ForeignKey(db_index=False, help_text='The tree this run runs (its snapshot); runs of one tree share it.',
                                    on_delete=django.db.models.deletion.PROTECT, related_name='runs', to='releases.release'),
        ),
    ]
