# Written by hand: SQL migration 0007 (sql/migrations/0007_flows.sql) adds the flow
# functions and the trigger chaining a flow's jobs; the model change mirrors pq_flow's new
# status default and choices (unmanaged).

from django.db import migrations, models

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
    ]
