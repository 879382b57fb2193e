"""Fixtures for the SQL tests: extra connections."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg2
import pytest
from psycopg2.extensions import connection


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
