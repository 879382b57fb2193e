# Written by hand: SQL migration 0007 (sql/migrations/0007_flows.sql) adds the flow
# functions and the trigger chaining a flow's jobs; the model change mirrors pq_flow's new
# status default and choices (unmanaged), and the admin's list of named schedules reads the
# view pq_schedules (migration 0005's) through an unmanaged model.

from django.db import migrations, models

import pq.fields
from pq.operations import RunPQSQL


class Migration(migrations.Migration):
    dependencies = [("pq", "0006_admin_lists")]

    operations = [
        # pq_flow_create, pq_flow_enqueue, pq_flow_start, the pq_job_200_flow trigger, the
        # index on pq_job.flow_id and pq_flow's checks. Reversed by dropping them.
        RunPQSQL(name="0007_flows", reverse="migrations/reverse/0007_flows"),
        migrations.AlterField(
            model_name="flowstore",
            name="status",
            field=models.TextField(
                choices=[
                    ("deferred", "deferred"),
                    ("started", "started"),
                    ("finished", "finished"),
                    ("failed", "failed"),
                ],
                default="deferred",
            ),
        ),
        migrations.CreateModel(
            name="Schedule",
            fields=[
                ("name", models.TextField(primary_key=True, serialize=False)),
                (
                    "schedule",
                    models.TextField(help_text="A cron expression, or the repeat interval."),
                ),
                ("time_zone", models.TextField(blank=True, null=True)),
                ("queue", models.TextField()),
                ("func", models.TextField()),
                ("args", pq.fields.PickleJSONField(default=list)),
                ("kwargs", pq.fields.PickleJSONField(default=dict)),
                ("next_run", models.DateTimeField()),
                ("next_job_id", models.BigIntegerField()),
                ("last_job_id", models.BigIntegerField(blank=True, null=True)),
                ("last_status", models.TextField(blank=True, null=True)),
                ("last_run", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "verbose_name": "cron schedule",
                "db_table": "pq_schedules",
                "managed": False,
            },
        ),
    ]
