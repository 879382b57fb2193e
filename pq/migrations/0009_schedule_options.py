# Written by hand: SQL migration 0009 (sql/migrations/0009_schedule_options.sql) gives
# pq_schedule, _pq_schedule_job and pq_schedule_cron the priority and retry arguments. No
# column changes, so no model state changes.

from django.db import migrations

from pq.operations import RunPQSQL


class Migration(migrations.Migration):
    dependencies = [("pq", "0008_priorities_retries")]

    operations = [
        RunPQSQL(name="0009_schedule_options", reverse="migrations/reverse/0009_schedule_options"),
    ]
