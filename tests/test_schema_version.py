"""Workers check the version of the installed SQL when they connect (pq_version())."""

from __future__ import annotations

from psycopg2.extensions import connection

from pq import sql
from tests.sql.helpers import fetch_value
from tests.sql.test_migrations import MIGRATION_NAME, SQL_MIGRATIONS


def test_pq_version_is_the_latest_migration_and_what_the_code_calls(raw_conn: connection) -> None:
    latest = max(p.stem for p in SQL_MIGRATIONS.glob("*.sql") if MIGRATION_NAME.match(p.stem))
    assert fetch_value(raw_conn, "SELECT pq_version()") == int(latest[:4]) == sql.SCHEMA_VERSION
