# Written by hand: SQL migration 0002 (sql/migrations/0002_func_paths.sql) changes functions
# only, so no model changes.

from django.db import migrations

from pq.operations import RunPQSQL


class Migration(migrations.Migration):
    dependencies = [("pq", "0001_initial")]

    operations = [
        # One rule for a job's function: a dotted path (module.function), or with an
        # instance, a method name. Reversed by the functions as 0001 made them.
        RunPQSQL(name="0002_func_paths", reverse="migrations/reverse/0002_func_paths"),
    ]
