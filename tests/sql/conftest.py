"""Fixtures for the SQL tests: extra connections, and the workers a module claims as."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg2
import pytest
from psycopg2.extensions import connection

from tests.sql.helpers import register


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
