"""Fixtures for the SQL tests: extra connections, a throwaway role, and the workers a module
claims as."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg2
import pytest
from psycopg2 import sql
from psycopg2.extensions import connection

from tests.sql.helpers import PASSWORD, Role, execute, fetch_value, register


@pytest.fixture
def connect(dsn: str) -> Iterator[Callable[..., connection]]:
    """Return a function opening connections (autocommit unless told); closed after the test."""
    opened: list[connection] = []

    def _connect(*, autocommit: bool = True, **params: str) -> connection:
        conn = psycopg2.connect(dsn, **params)
        conn.autocommit = autocommit
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        conn.close()


@pytest.fixture(autouse=True)
def _claiming_workers(request: pytest.FixtureRequest, raw_conn: connection) -> None:
    """Register the worker names a module lists in ``CLAIMING_WORKERS`` before each of its
    tests: pq_dequeue_many raises PQ006 for an unregistered worker."""
    register(raw_conn, *getattr(request.module, "CLAIMING_WORKERS", ()))


@pytest.fixture
def role(raw_conn: connection, dsn: str) -> Iterator[Role]:
    """Create a LOGIN role with no rights on the pq tables; drop it after the test."""
    if not fetch_value(
        raw_conn, "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
    ):
        pytest.skip("the test database user may not create roles")
    name = f"pq_test_role_{uuid.uuid4().hex[:12]}"
    execute(
        raw_conn,
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(name), sql.Literal(PASSWORD)
        ),
    )
    created = Role(name, dsn)
    try:
        yield created
    finally:
        for conn in created.connections:
            conn.close()
        execute(raw_conn, sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        execute(raw_conn, sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
