# Written by hand: SQL migration 0005 (sql/migrations/0005_scheduling.sql) adds the pq_job
# columns of repeating and cron jobs and the scheduling functions; the model changes mirror
# the columns (unmanaged).

from django.db import migrations, models

from pq.operations import RunPQSQL


class Migration(migrations.Migration):
    dependencies = [("pq", "0004_private_helpers")]

    operations = [
        # pq_schedule, pq_schedule_cron, pq_unschedule, pq_schedules, pq_cron_next and the
        # trigger planning each next run. Reversed by dropping them and the columns.
        RunPQSQL(name="0005_scheduling", reverse="migrations/reverse/0005_scheduling"),
        migrations.AddField(
            model_name="job",
            name="time_zone",
            field=models.TextField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="job",
            name="repeat_from",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="job",
            name="cron",
            field=models.TextField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="job",
            name="schedule_name",
            field=models.TextField(blank=True, null=True),
        ),
    ]
