"""What a worker does on its connection besides claiming jobs, each on its own schedule:
heartbeats (renewing its registration, reading its stop flag) and maintenance (failing the
jobs of dead workers, expiring results, now and then removing unused queue rows)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import psycopg2

from pq import sql

logger = logging.getLogger("pq")

CONNECTION_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)
QUEUE_CLEANUP_EVERY = 300.0  # seconds between removals of unused queue rows


class Duties:
    """Send heartbeats and do maintenance when due; tell the worker's wait how long it may last.

    ``cursor`` returns a cursor on the worker's current connection; ``register`` registers
    the worker again (it was reaped while unreachable); ``stop`` is called when the worker was
    asked to stop through its stop flag.
    """

    def __init__(
        self,
        name: str,
        interval: float,
        cursor: Callable[[], Any],
        register: Callable[[], None],
        stop: Callable[[], None],
    ) -> None:
        self.name = name
        self.interval = interval
        self._cursor = cursor
        self._register = register
        self._stop = stop
        self._next_heartbeat = 0.0
        self._next_maintenance = 0.0
        self._next_queue_cleanup = 0.0

    @property
    def ttl(self) -> int:
        """Seconds a registration lasts without a heartbeat: three heartbeat intervals."""
        return max(1, math.ceil(self.interval * 3))

    def registered(self) -> None:
        """Count a registration as a heartbeat: the next one is due an interval from now."""
        self._next_heartbeat = time.monotonic() + self.interval

    def until_due(self) -> float:
        """Return the seconds until the next heartbeat or maintenance is due."""
        return max(0.0, min(self._next_heartbeat, self._next_maintenance) - time.monotonic())

    def tick(self, quiet: bool = False) -> bool | None:
        """Send a heartbeat when one is due, and do maintenance when that is due.

        Each has its own schedule: an empty claim also sends a heartbeat (to read the stop
        flag), and a worker woken more often than every heartbeat interval must still reap
        dead workers and expire results. Returns the stop flag when a heartbeat was sent.
        ``quiet`` (while a horse runs or the worker waits): a lost connection is left to the
        main loop to mend.
        """
        now = time.monotonic()
        stop = None
        try:
            if now >= self._next_heartbeat:
                stop = self.heartbeat()
            if now >= self._next_maintenance:
                self.maintain()
        except CONNECTION_ERRORS:
            if not quiet:
                raise
            self._next_heartbeat = self._next_maintenance = now + self.interval
            return None
        return stop

    def maintain(self) -> None:
        """Fail the jobs of dead workers and delete results whose TTL ran out; now and then,
        remove the rows of queues nothing uses any more."""
        now = time.monotonic()
        self._next_maintenance = now + self.interval
        reaped = sql.reap_workers(self._cursor())
        if reaped:
            logger.warning("Failed %d job(s) abandoned by dead workers", reaped)
        sql.expire_jobs(self._cursor())
        if now >= self._next_queue_cleanup:
            self._next_queue_cleanup = now + QUEUE_CLEANUP_EVERY
            sql.remove_empty_queues(self._cursor())

    def heartbeat(self, register: bool = True) -> bool | None:
        """Renew the registration; return True when the worker was asked to stop, None when it
        was not registered (reaped while unreachable): then, with ``register``, register again."""
        self._next_heartbeat = time.monotonic() + self.interval
        stop = sql.heartbeat(self._cursor(), self.name, self.ttl)
        if stop is None and register:
            self._register()
        elif stop:
            logger.info("Worker %s was asked to stop", self.name)
            self._stop()
        return stop

    def beat_during_job(self) -> None:
        """Send a heartbeat, from a thread beside an in-process job, when one is due; leave a
        lost connection, or registering again, to the loop."""
        if time.monotonic() < self._next_heartbeat:
            return
        try:
            stop = self.heartbeat(register=False)
        except CONNECTION_ERRORS:
            return
        if stop is None:
            self._next_heartbeat = 0.0  # unregistered: the loop registers again at once
