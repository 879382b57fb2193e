# Written by hand: SQL migration 0010 (sql/migrations/0010_schedule_view_options.sql) adds
# priority, max_retries and retry_intervals to the view pq_schedules; the Schedule model
# (unmanaged) mirrors them.

from django.db import migrations, models

import pq.fields
from pq.operations import RunPQSQL


class Migration(migrations.Migration):
    dependencies = [("pq", "0009_schedule_options")]

    operations = [
        RunPQSQL(
            name="0010_schedule_view_options",
            reverse="migrations/reverse/0010_schedule_view_options",
        ),
        migrations.AddField(
            model_name="schedule", name="priority", field=models.SmallIntegerField(default=0)
        ),
        migrations.AddField(
            model_name="schedule", name="max_retries", field=models.IntegerField(default=0)
        ),
        migrations.AddField(
            model_name="schedule",
            name="retry_intervals",
            field=pq.fields.PGArrayField(blank=True, element_type="integer", null=True),
        ),
    ]
