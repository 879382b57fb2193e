# Written by hand: SQL migration 0011 (sql/migrations/0011_job_checks.sql) folds the thirteen
# CHECK constraints of pq_job into one, pq_job_valid, which calls _pq_job_valid. The Job
# model (unmanaged) is unchanged.

from django.db import migrations

from pq.operations import RunPQSQL


class Migration(migrations.Migration):
    dependencies = [("pq", "0010_schedule_view_options")]

    operations = [
        RunPQSQL(name="0011_job_checks", reverse="migrations/reverse/0011_job_checks"),
    ]
