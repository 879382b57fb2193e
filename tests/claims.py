"""Claim jobs in tests as a worker would: only registered workers get jobs (PQ006)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pq import sql


def claim(cursor: Any, queues: Sequence[str] | None, worker: str) -> dict[str, Any] | None:
    """Register ``worker`` for an hour unless it is registered, then claim with ``pq_dequeue``.

    Registering only once matters: registering again is a reconnect, which puts the jobs
    the worker claimed before back in their queues.
    """
    cursor.execute(
        "SELECT pq_register_worker(%s, NULL, 3600)"
        " WHERE NOT EXISTS (SELECT 1 FROM pq_worker WHERE name = %s)",
        [worker, worker],
    )
    return sql.dequeue(cursor, queues, worker)
