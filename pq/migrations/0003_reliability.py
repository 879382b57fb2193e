# Written by hand: SQL migration 0003 (sql/migrations/0003_reliability.sql) adds the column
# pq_worker.token, indexes and functions; the model change mirrors the column (unmanaged).

from django.db import migrations, models

from pq.operations import RunPQSQL


class Migration(migrations.Migration):
    dependencies = [("pq", "0002_func_paths")]

    operations = [
        # Limits on enqueued jobs, worker tokens, PQ006 for unregistered workers, claims over
        # all queues, warnings for lost outcomes. Reversed by the objects as 0002 left them.
        RunPQSQL(name="0003_reliability", reverse="migrations/reverse/0003_reliability"),
        migrations.AddField(
            model_name="workerstore",
            name="token",
            field=models.TextField(blank=True, null=True),
        ),
    ]
