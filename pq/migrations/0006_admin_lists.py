# Written by hand: the admin's lists of scheduled, started and finished jobs are proxies of
# Job. Model state only: no SQL changes, so there is no sql/migrations/0006 twin.

from django.db import migrations


def _job_proxy(name: str, verbose_name: str) -> migrations.CreateModel:
    return migrations.CreateModel(
        name=name,
        fields=[],
        options={"verbose_name": verbose_name, "proxy": True, "indexes": [], "constraints": []},
        bases=("pq.job",),
    )


class Migration(migrations.Migration):
    dependencies = [("pq", "0005_scheduling")]

    operations = [
        _job_proxy("ScheduledJob", "scheduled job"),
        _job_proxy("StartedJob", "started job"),
        _job_proxy("FinishedJob", "finished job"),
    ]
