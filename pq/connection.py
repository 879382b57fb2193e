"""Raw psycopg2 connections built from a Django database's settings, whichever driver Django uses.

The worker keeps one psycopg2 connection of its own (autocommit, ``LISTEN``, ``select()``,
``conn.notifies``), even on sites where Django talks to PostgreSQL through psycopg 3. Django's
``get_connection_params()`` returns what its driver's ``connect()`` takes: libpq keywords plus
driver-only keys (psycopg 3's ``context``, ``prepare_threshold``, Django's ``cursor_factory``),
so only the keys the installed libpq knows are passed on to psycopg2.

:func:`meanwhile` lets the worker do something useful (fork its next work horse) while its
claim waits for the server.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras

logger = logging.getLogger("pq")


@functools.cache
def is_libpq_keyword(key: str) -> bool:
    """Return whether the installed libpq accepts ``key`` as a connection keyword.

    libpq itself is asked (``make_dsn`` parses what it builds), so keywords added by newer
    libpq versions keep working without a list to maintain here.
    """
    try:
        psycopg2.extensions.make_dsn(**{key: "x"})
    except psycopg2.ProgrammingError:
        return False
    return True


def _escape_option(value: str) -> str:
    """Escape ``value`` for libpq's ``options``, where spaces separate arguments."""
    return value.replace("\\", "\\\\").replace(" ", "\\ ")


def libpq_params(alias: str) -> dict[str, Any]:
    """Return libpq connection keywords for Django database ``alias``, driver-only keys dropped.

    ``OPTIONS["assume_role"]``, for which Django runs ``SET ROLE`` on each new connection, is
    passed as ``-c role=...`` in libpq's ``options``: the server sets the role at connection
    start, so every (re)connection of the worker runs as that role too.
    """
    from django.db import connections

    connection = connections[alias]
    params = {
        key: value
        for key, value in connection.get_connection_params().items()
        if value is not None and is_libpq_keyword(key)
    }
    role = connection.settings_dict["OPTIONS"].get("assume_role")
    if role:
        params["options"] = _with_role(params.get("options"), str(role))
    return params


def _with_role(options: str | None, role: str) -> str:
    """Return libpq ``options`` that also set ``role`` at connection start."""
    role_option = f"-c role={_escape_option(role)}"
    return f"{options} {role_option}" if options else role_option


def connect(alias: str) -> psycopg2.extensions.connection:
    """Open a new psycopg2 connection to Django database ``alias``, whatever Django's driver."""
    return psycopg2.connect(**libpq_params(alias))


@contextmanager
def meanwhile(task: Callable[[], None] | None) -> Iterator[None]:
    """Run ``task`` once while the first query of the block waits for the server's answer.

    psycopg2 calls a wait callback where a query would block (its "green" mode); the one set
    here runs ``task``, then waits for the answer with psycopg2's own ``wait_select`` (which
    cancels the query on KeyboardInterrupt), as its blocking call would. The callback is
    psycopg2's, for the whole process: the block must run in a process with no other thread
    using psycopg2. Nothing is set, and ``task`` is not run,
    when ``task`` is None or another wait callback is set (a site's psycogreen, say), which
    keeps its meaning. A ``task`` that raises is logged; the query goes on.

    A process forked by ``task`` inherits the callback: it calls :func:`forget_wait_callback`.
    """
    if task is None or psycopg2.extensions.get_wait_callback() is not None:
        yield
        return
    pending = [task]

    def wait(conn: Any) -> None:
        if pending:
            try:
                pending.pop()()
            except Exception:
                logger.exception("Work done while waiting for the database failed")
        psycopg2.extras.wait_select(conn)

    wait.pq_meanwhile = True  # type: ignore[attr-defined]
    psycopg2.extensions.set_wait_callback(wait)
    try:
        yield
    finally:
        psycopg2.extensions.set_wait_callback(None)


def forget_wait_callback() -> None:
    """Drop the wait callback of :func:`meanwhile` inherited by a forked process, so that its
    queries block as usual (another callback, such as psycogreen's, is kept)."""
    callback = psycopg2.extensions.get_wait_callback()
    if getattr(callback, "pq_meanwhile", False):
        psycopg2.extensions.set_wait_callback(None)
