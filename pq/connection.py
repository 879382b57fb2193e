"""Raw psycopg2 connections built from a Django database's settings, whichever driver Django uses.

The worker keeps one psycopg2 connection of its own (autocommit, ``LISTEN``, ``select()``,
``conn.notifies``), even on sites where Django talks to PostgreSQL through psycopg 3. Django's
``get_connection_params()`` returns what its driver's ``connect()`` takes: libpq keywords plus
driver-only keys (psycopg 3's ``context``, ``prepare_threshold``, Django's ``cursor_factory``),
so only the keys the installed libpq knows are passed on to psycopg2.
"""

from __future__ import annotations

import functools
from typing import Any

import psycopg2
import psycopg2.extensions


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
