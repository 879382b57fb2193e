"""Workers check the version of the installed SQL when they connect (pq_version())."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing

import psycopg2
import pytest
from psycopg2 import sql as pgsql
from psycopg2.extensions import connection, make_dsn, parse_dsn

from pq import sql
from tests.sql.helpers import execute, fetch_value
from tests.sql.test_migrations import MIGRATION_NAME, SQL_MIGRATIONS
from tests.workerprocs import ROOT, worker_env


def test_pq_version_is_the_latest_migration_and_what_the_code_calls(raw_conn: connection) -> None:
    latest = max(p.stem for p in SQL_MIGRATIONS.glob("*.sql") if MIGRATION_NAME.match(p.stem))
    assert fetch_value(raw_conn, "SELECT pq_version()") == int(latest[:4]) == sql.SCHEMA_VERSION


@pytest.fixture
def database(raw_conn: connection, dsn: str) -> Iterator[str]:
    """A new empty database on the test server; its DSN."""
    name = "pq_version_test"
    execute(
        raw_conn,
        pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)),
    )
    execute(raw_conn, pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    try:
        yield make_dsn(**{**parse_dsn(dsn), "dbname": name})
    finally:
        execute(
            raw_conn,
            pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)),
        )


def django(database: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**worker_env(), "PQ_TEST_DATABASE_DSN": database}
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_worker_refuses_older_sql_and_says_to_migrate(database: str) -> None:
    assert django(database, "migrate", "pq", "0003", "-v0").returncode == 0
    done = django(database, "pqworker", "--burst")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "CommandError: django-pq's SQL in database 'default' is older than version 4, and this"
        f" code needs version {sql.SCHEMA_VERSION}: run `python manage.py migrate pq` (or apply"
        " sql/migrations/ in order), then start the worker again"
    ), done.stderr
    assert "Traceback" not in done.stderr
    assert django(database, "migrate", "-v0").returncode == 0
    assert django(database, "pqworker", "--burst").returncode == 0


def test_a_worker_refuses_newer_sql_and_says_to_update(database: str) -> None:
    assert django(database, "migrate", "-v0").returncode == 0
    with closing(psycopg2.connect(database)) as conn, conn, conn.cursor() as cursor:
        cursor.execute(
            "CREATE OR REPLACE FUNCTION pq_version() RETURNS integer LANGUAGE sql AS 'SELECT 1000'"
        )
    done = django(database, "pqworker", "--burst")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "CommandError: django-pq's SQL in database 'default' is version 1000, newer than this"
        f" code (version {sql.SCHEMA_VERSION}): update django-pq where the worker runs"
    ), done.stderr
