"""Run the suite against a real, committed-to PostgreSQL database (no pytest-django).

Workers fork and open their own connections, so tests cannot hide inside a
rolled-back transaction: each test starts from truncated ``pq_*`` tables instead.

- ``PQ_TEST_DSN`` set: on that server, create ``pq_test_<pid>`` and drop it at the end.
- otherwise: start a throwaway cluster (``pq.testing.TemporaryPostgres``).

The test database's DSN is exported as ``PQ_TEST_DATABASE_DSN`` (read by
``tests/settings.py``, inherited by subprocesses).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass

import django
import psycopg2
import psycopg2.errors
import pytest
from psycopg2 import sql
from psycopg2.extensions import connection, make_dsn, parse_dsn

from pq.testing import PostgresUnavailable, TemporaryPostgres

SERVER_ENV = "PQ_TEST_DSN"
DATABASE_ENV = "PQ_TEST_DATABASE_DSN"
SETTINGS = "tests.settings"

# The queue rows sql/schema.sql inserts, put back after each truncation so every test
# starts from a freshly installed state.
SEED_QUEUES = (
    "INSERT INTO pq_queue (name, serial)"
    " VALUES ('default', false), ('failed', false), ('serial', true) ON CONFLICT DO NOTHING"
)

PQ_TABLES = sql.SQL(
    "SELECT schemaname, tablename FROM pg_tables"
    " WHERE schemaname = current_schema() AND starts_with(tablename, 'pq_')"
    " ORDER BY tablename"
)


@dataclass
class TestDatabase:
    """The session's database: its DSN and what to undo at the end."""

    __test__ = False  # not a test class, despite the name

    dsn: str
    cluster: TemporaryPostgres | None = None
    server_dsn: str | None = None
    name: str | None = None
    owner_pid: int = 0

    @classmethod
    def create(cls) -> TestDatabase:
        """Create a database on PQ_TEST_DSN's server, or start a temporary cluster."""
        server_dsn = os.environ.get(SERVER_ENV)
        if not server_dsn:
            cluster = TemporaryPostgres().start()
            return cls(dsn=cluster.dsn, cluster=cluster, owner_pid=os.getpid())
        name = f"pq_test_{os.getpid()}"
        _admin(server_dsn, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)"), name)
        _admin(server_dsn, sql.SQL("CREATE DATABASE {}"), name)
        dsn = make_dsn(**{**parse_dsn(server_dsn), "dbname": name})
        return cls(dsn=dsn, server_dsn=server_dsn, name=name, owner_pid=os.getpid())

    def destroy(self) -> None:
        """Drop the database or stop the cluster (only in the process that made it)."""
        if os.getpid() != self.owner_pid:
            return
        if self.cluster is not None:
            self.cluster.stop()
        if self.server_dsn is not None and self.name is not None:
            _admin(self.server_dsn, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)"), self.name)


DATABASE_KEY = pytest.StashKey[TestDatabase]()


def _admin(server_dsn: str, statement: sql.SQL, name: str) -> None:
    with closing(psycopg2.connect(server_dsn)) as conn:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(statement.format(sql.Identifier(name)))


def pytest_configure(config: pytest.Config) -> None:
    """Create the test database, configure Django on it and migrate."""
    if config.option.help:
        return
    database = _create_database()
    config.stash[DATABASE_KEY] = database
    try:
        os.environ[DATABASE_ENV] = database.dsn
        os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
    except BaseException:
        _close_django_connections()
        database.destroy()
        raise


def _create_database() -> TestDatabase:
    """Return the session's database; raise UsageError, one line, if there is no PostgreSQL.

    A UsageError prints as ``ERROR: <message>`` without the INTERNALERROR traceback.
    """
    try:
        return TestDatabase.create()
    except PostgresUnavailable as exc:
        raise pytest.UsageError(str(exc)) from None
    except psycopg2.OperationalError as exc:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise pytest.UsageError(f"cannot use ${SERVER_ENV}: {lines[0]}") from None


def pytest_unconfigure(config: pytest.Config) -> None:
    """Drop the test database or stop the temporary cluster."""
    database = config.stash.get(DATABASE_KEY, None)
    if database is None:
        return
    del config.stash[DATABASE_KEY]
    _close_django_connections()
    database.destroy()


def pytest_report_header(config: pytest.Config) -> str | None:
    """Show which PostgreSQL the session runs against."""
    database = config.stash.get(DATABASE_KEY, None)
    if database is None:
        return None
    with closing(psycopg2.connect(database.dsn)) as conn:
        version = conn.server_version
    cluster = database.cluster
    where = f"temporary cluster from {cluster.bin_dir}" if cluster else f"${SERVER_ENV}"
    shown = make_dsn(**{k: v for k, v in parse_dsn(database.dsn).items() if k != "password"})
    return f"postgresql: {version // 10000}.{version % 10000} ({where}) {shown}"


def _close_django_connections() -> None:
    from django.db import connections

    connections.close_all()


def truncate_pq_tables(dsn: str) -> None:
    """Empty every ``pq_*`` table of the current schema, restart its sequences, re-seed queues.

    Fails the test, rather than hanging, when an earlier test's connection
    (a worker left running?) still holds a lock on one of them.
    """
    with closing(psycopg2.connect(dsn)) as conn:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("SET lock_timeout = '10s'")
            cursor.execute(PQ_TABLES)
            tables = [sql.Identifier(schema, table) for schema, table in cursor.fetchall()]
            if not tables:
                return
            statement = sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                sql.SQL(", ").join(tables)
            )
            try:
                cursor.execute(statement)
            except psycopg2.errors.LockNotAvailable as exc:
                pytest.fail(
                    f"could not truncate pq_* tables: {exc.pgerror.strip()} "
                    "(a process from an earlier test still holds a lock)",
                    pytrace=False,
                )
            cursor.execute(SEED_QUEUES)


@pytest.fixture(scope="session")
def dsn(pytestconfig: pytest.Config) -> str:
    """Return the libpq DSN of the test database (for psycopg2 and subprocesses)."""
    return pytestconfig.stash[DATABASE_KEY].dsn


@pytest.fixture(autouse=True)
def _clean_pq_tables(dsn: str) -> Iterator[None]:
    """Start each test on empty ``pq_*`` tables; close Django's connections after it."""
    truncate_pq_tables(dsn)
    yield
    _close_django_connections()


@pytest.fixture
def raw_conn(dsn: str) -> Iterator[connection]:
    """Yield an autocommit psycopg2 connection to the test database."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()
