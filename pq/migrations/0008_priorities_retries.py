# Written by hand: SQL migration 0008 (sql/migrations/0008_priorities_retries.sql) adds the
# pq_job columns of priorities and retries and the functions taking them; the model changes
# mirror the columns (unmanaged).

from django.db import migrations, models

import pq.fields
from pq.operations import RunPQSQL


class Migration(migrations.Migration):
    dependencies = [("pq", "0007_flows")]

    operations = [
        # priority, max_retries, retry_intervals, attempts, errors; pq_enqueue and pq_fail
        # with their new arguments; the claim by priority. Reversed by dropping them.
        RunPQSQL(
            name="0008_priorities_retries", reverse="migrations/reverse/0008_priorities_retries"
        ),
        migrations.AddField(
            model_name="job", name="priority", field=models.SmallIntegerField(default=0)
        ),
        migrations.AddField(
            model_name="job", name="max_retries", field=models.IntegerField(default=0)
        ),
        migrations.AddField(
            model_name="job",
            name="retry_intervals",
            field=pq.fields.PGArrayField(blank=True, element_type="integer", null=True),
        ),
        migrations.AddField(
            model_name="job", name="attempts", field=models.IntegerField(default=0)
        ),
        migrations.AddField(model_name="job", name="errors", field=models.JSONField(default=list)),
    ]
