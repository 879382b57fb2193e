"""Who a worker is to the database: its name, host, pid and per-process token, and how it
registers under that name."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Sequence
from typing import Any

from pq import sql
from pq.exceptions import WorkerNameTaken
from pq.processes import pid_alive

logger = logging.getLogger("pq")


class WorkerIdentity:
    """A worker's name (default ``hostname.pid``), host, pid and token.

    The token tells this process apart from an earlier one with the same name, host and pid
    (a container restarted within the heartbeat TTL): registering again is a reconnect of
    this process only with this token.
    """

    def __init__(self, name: str | None = None) -> None:
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.name = name or f"{self.hostname}.{self.pid}"
        self.token = secrets.token_hex(16)

    def register(
        self, cursor: Any, queues: Sequence[str] | None, ttl: int, keep: Sequence[int]
    ) -> None:
        """Register alive for ``ttl`` seconds (``pq_register_worker``), keeping ``keep``.

        Raises WorkerNameTaken when a live worker has the name, unless it is this host's
        dead process: its name is taken over (see :meth:`_take_over_dead_namesake`).
        """
        args = (self.name, queues, ttl, self.hostname, self.pid, keep)
        try:
            sql.register_worker(cursor, *args, token=self.token)
        except WorkerNameTaken:
            if not self._take_over_dead_namesake(cursor):
                raise
            sql.register_worker(cursor, *args, token=self.token)

    def _take_over_dead_namesake(self, cursor: Any) -> bool:
        """Unregister the worker holding our name if it ran on this host and its process is
        dead (a worker restarted with a fixed name right after a kill -9); its started jobs
        are failed as abandoned. Return whether it was taken over. (A holder with our own pid
        and another token, a container restarted as pid 1, is replaced by the SQL itself.)"""
        holder = sql.worker_host(cursor, self.name)
        if holder is None or holder[0] != self.hostname or holder[1] in (None, self.pid):
            return False
        if pid_alive(holder[1]):
            return False
        logger.warning(
            "Worker name %s was held by process %s of this host, which is dead: taking the "
            "name over; its started jobs are failed as abandoned",
            self.name,
            holder[1],
        )
        sql.unregister_worker(cursor, self.name)
        return True
