"""Small helpers for the SQL tests: run a query, enqueue, read a job, catch a PQ error, listen,
connect as a throwaway role."""

from __future__ import annotations

import json
import re
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import psycopg2.extras
import pytest
from psycopg2.extensions import connection

CHANNEL = "pq_jobs"
FUNC = "tests.jobs.say_hello"
PASSWORD = "pq-test-password"  # of the throwaway roles the ``role`` fixture makes


@dataclass
class Role:
    """A throwaway LOGIN role (the ``role`` fixture) and the connections opened as it."""

    name: str
    dsn: str
    connections: list[connection] = field(default_factory=list)

    def connect(self) -> connection:
        """Open an autocommit connection as this role."""
        conn = psycopg2.connect(self.dsn, user=self.name, password=PASSWORD)
        conn.autocommit = True
        self.connections.append(conn)
        return conn


def fetch_all(conn: connection, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run ``query`` and return all its rows."""
    with conn.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def fetch_value(conn: connection, query: str, params: Any = None) -> Any:
    """Run ``query`` and return the first column of its single row."""
    rows = fetch_all(conn, query, params)
    assert len(rows) == 1, f"expected one row from {query!r}, got {rows!r}"
    return rows[0][0]


def execute(conn: connection, query: str, params: Any = None) -> None:
    """Run a statement whose result is not needed."""
    with conn.cursor() as cursor:
        cursor.execute(query, params)


def enqueue(
    conn: connection,
    queue: str = "default",
    func: str = FUNC,
    *,
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    timeout: int | None = None,
    result_ttl: int | None = None,
    scheduled_for: Any = None,
) -> int:
    """Call ``pq_enqueue`` and return the new job's id."""
    return fetch_value(
        conn,
        "SELECT pq_enqueue(%s, %s, %s::jsonb, %s::jsonb, timeout => %s, result_ttl => %s,"
        " scheduled_for => %s)",
        (
            queue,
            func,
            json.dumps(args or []),
            json.dumps(kwargs or {}),
            timeout,
            result_ttl,
            scheduled_for,
        ),
    )


def register(conn: connection, *workers: str, ttl: int = 3600) -> None:
    """Register ``workers`` as ``pq_register_worker`` with its defaults would (no host, pid
    or token): claiming needs a registered worker (PQ006)."""
    for worker in workers:
        execute(conn, "SELECT pq_register_worker(%s, NULL, %s)", (worker, ttl))


def dequeue(conn: connection, queues: list[str], worker: str = "w1") -> dict[str, Any] | None:
    """Call ``pq_dequeue`` and return the claimed job as a dict, or None."""
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
        cursor.execute("SELECT * FROM pq_dequeue(%s, %s)", (queues, worker))
        rows = cursor.fetchall()
    assert len(rows) <= 1, f"pq_dequeue returned {len(rows)} rows"
    return dict(rows[0]) if rows else None


def get_job(conn: connection, job_id: int) -> dict[str, Any] | None:
    """Return the pq_job row ``job_id`` as a dict, or None if it does not exist."""
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
        cursor.execute("SELECT * FROM pq_job WHERE id = %s", (job_id,))
        row = cursor.fetchone()
    return dict(row) if row else None


def job_ids(conn: connection, where: str = "true", params: Any = None) -> list[int]:
    """Return the ids of the jobs matching ``where``, in id order."""
    return [
        row[0]
        for row in fetch_all(conn, f"SELECT id FROM pq_job WHERE {where} ORDER BY id", params)
    ]


@contextmanager
def raises_pq(sqlstate: str, match: str) -> Iterator[pytest.ExceptionInfo[psycopg2.Error]]:
    """Expect a database error with this SQLSTATE whose primary message matches ``match``."""
    with pytest.raises(psycopg2.Error) as info:
        yield info
    error = info.value
    assert error.pgcode == sqlstate, (
        f"expected SQLSTATE {sqlstate}, got {error.pgcode}: {error.pgerror}"
    )
    message = error.diag.message_primary or ""
    assert re.search(match, message), f"message {message!r} does not match {match!r}"


def listen(conn: connection, channel: str = CHANNEL) -> None:
    """LISTEN on ``channel`` (the connection must be in autocommit mode)."""
    execute(conn, f"LISTEN {channel}")


def notifications(
    conn: connection, *, timeout: float = 1.0, count: int | None = None
) -> list[tuple[str, str]]:
    """Collect (channel, payload) notifications on a listening connection.

    Waits with select() until ``count`` have arrived or ``timeout`` seconds have passed
    (without ``count``: the whole timeout, to see everything that was sent).
    """
    received: list[tuple[str, str]] = []
    deadline = time.monotonic() + timeout
    while True:
        conn.poll()
        while conn.notifies:
            notify = conn.notifies.pop(0)
            received.append((notify.channel, notify.payload))
        if count is not None and len(received) >= count:
            return received
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return received
        select.select([conn], [], [], remaining)
