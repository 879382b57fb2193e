# Written by hand: SQL migration 0004 (sql/migrations/0004_private_helpers.sql) renames and
# adds functions only, so no model changes.

from django.db import migrations

from pq.operations import RunPQSQL


class Migration(migrations.Migration):
    dependencies = [("pq", "0003_reliability")]

    operations = [
        # Private helpers get the _pq_ prefix; pq_version() tells workers the SQL's version.
        # Reversed by the old names and no pq_version().
        RunPQSQL(name="0004_private_helpers", reverse="migrations/reverse/0004_private_helpers"),
    ]
