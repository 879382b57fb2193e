"""The worker's own psycopg2 connection, built from Django settings whichever driver Django uses.

Each test adds a Django database alias on the test database whose ``OPTIONS`` mix libpq
keywords with keys only Django or its driver understand (psycopg 3's ``prepare_threshold``
when Django uses psycopg 3; Django adds ``context`` and ``cursor_factory`` itself), and
checks what reaches libpq, against the real server.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

import pytest
from django.db import connections
from django.db.backends.postgresql.psycopg_any import IsolationLevel, is_psycopg3
from psycopg2 import sql
from psycopg2.extensions import connection

from pq import Queue, Worker
from pq.connection import connect, is_libpq_keyword, libpq_params
from pq.models import Job, JobStatus
from tests import jobs

ALIAS = "pq_connection_test"
LIBPQ_OPTIONS = {
    "application_name": "pq-connection-test",
    "sslmode": "disable",
    "options": "-c statement_timeout=4321",
}
DJANGO_OPTIONS: dict[str, Any] = {
    "isolation_level": IsolationLevel.READ_COMMITTED,
    "server_side_binding": True,  # psycopg 3 only; Django drops it under psycopg2
    **({"prepare_threshold": 0} if is_psycopg3 else {}),  # psycopg2.connect would refuse it
}
DRIVER_KEYS = (
    "context",
    "prepare_threshold",
    "cursor_factory",
    "pool",
    "server_side_binding",
    "isolation_level",
    "assume_role",
)


@contextmanager
def database(**options: Any) -> Iterator[str]:
    """Add a Django database alias on the test database with ``options`` in its OPTIONS."""
    entry = copy.deepcopy(connections.settings["default"])
    entry["OPTIONS"] = {**entry["OPTIONS"], **options}
    connections.settings[ALIAS] = entry
    try:
        yield ALIAS
    finally:
        connections[ALIAS].close()
        del connections[ALIAS]
        del connections.settings[ALIAS]


def fetch_value(conn: connection, query: str) -> Any:
    """Return the one value ``query`` selects on ``conn``."""
    with conn.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchone()[0]


@pytest.fixture
def assumed_role(raw_conn: connection) -> Iterator[str]:
    """Create a NOLOGIN role with the test user's rights, a space and capitals in its name."""
    if not fetch_value(raw_conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
        pytest.skip("only a superuser may SET ROLE to a role it is not a member of")
    name = f"pq Assumed {uuid.uuid4().hex[:8]}"
    role = sql.Identifier(name)
    with raw_conn.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE ROLE {} NOLOGIN IN ROLE CURRENT_USER").format(role))
    try:
        yield name
    finally:
        with raw_conn.cursor() as cursor:
            cursor.execute(sql.SQL("DROP ROLE {}").format(role))


def test_libpq_keywords_are_known_and_driver_keys_are_not() -> None:
    for keyword in ("dbname", "host", "sslmode", "application_name", "options", "service"):
        assert is_libpq_keyword(keyword), keyword
    for key in DRIVER_KEYS:
        assert not is_libpq_keyword(key), key


def test_params_keep_libpq_keywords_and_drop_driver_keys() -> None:
    with database(**LIBPQ_OPTIONS, **DJANGO_OPTIONS) as alias:
        params = libpq_params(alias)
        django_params = connections[alias].get_connection_params()

    for keyword, value in LIBPQ_OPTIONS.items():
        assert params[keyword] == value
    assert not set(params) & set(DRIVER_KEYS)
    assert params["dbname"] == django_params["dbname"]
    assert {key: django_params[key] for key in params} == params


def test_the_connection_reaches_the_server_with_the_libpq_options() -> None:
    with database(**LIBPQ_OPTIONS, **DJANGO_OPTIONS) as alias, closing(connect(alias)) as conn:
        assert fetch_value(conn, "SHOW application_name") == "pq-connection-test"
        assert fetch_value(conn, "SHOW statement_timeout") == "4321ms"


def test_a_worker_on_a_database_with_driver_options_enqueues_and_runs_a_job() -> None:
    with database(**LIBPQ_OPTIONS, **DJANGO_OPTIONS) as alias:
        job = Queue(connection=alias).enqueue(jobs.say_hello, "options")
        worker = Worker(connection=alias)
        assert worker.work(burst=True)

        finished = Job.fetch(job.pk, connection=alias)
    assert worker.jobs_done == 1
    assert finished.status == JobStatus.FINISHED
    assert finished.result == "Hi there, options!"


def test_the_worker_connects_as_django_assume_role(assumed_role: str) -> None:
    with database(assume_role=assumed_role, options="-c statement_timeout=4321") as alias:
        with connections[alias].cursor() as cursor:  # what Django's own connections do
            cursor.execute("SELECT current_user")
            assert cursor.fetchone()[0] == assumed_role
        worker = Worker(connection=alias)
        worker._connect()  # the worker's own connection, as work() opens it
        try:
            assert fetch_value(worker._conn, "SELECT current_user") == assumed_role
            assert fetch_value(worker._conn, "SHOW statement_timeout") == "4321ms"
        finally:
            worker._shutdown()


def test_a_worker_as_the_assumed_role_runs_a_job(assumed_role: str) -> None:
    with database(assume_role=assumed_role) as alias:
        job = Queue(connection=alias).enqueue(jobs.say_hello, "role")
        assert Worker(connection=alias).work(burst=True)

        assert Job.fetch(job.pk, connection=alias).result == "Hi there, role!"
