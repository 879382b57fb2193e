"""The jobs a worker holds and the outcomes it has not stored yet."""

from __future__ import annotations

import logging
from typing import Any

from pq import sql
from pq.horse import Outcome
from pq.models import Job

logger = logging.getLogger("pq")


class Ledger:
    """Jobs claimed and not run yet, results of jobs done and not stored yet, and failures not
    stored yet, each as (job id, outcome): several when rows of one claimed batch do not decode.

    A job stays claimed until its outcome is recorded, and its outcome stays here until it is
    stored: every job the worker holds is in :meth:`held` (the jobs to keep when it registers
    again after a reconnect) until :meth:`flush` stores or releases it. Results are stored with
    the next claim, in the same call (the loop's ``pq_finish_dequeue``, then
    :meth:`results_stored`).
    """

    def __init__(self, worker_name: str) -> None:
        self.worker_name = worker_name
        self.claimed: list[Job] = []
        self.done: list[tuple[int, Any]] = []
        self.failed: list[tuple[int, Outcome]] = []

    def held(self) -> list[int]:
        """Return the ids of every job claimed, done or failed and not stored yet."""
        keep = [job.pk for job in self.claimed] + [job_id for job_id, _ in self.done]
        return keep + [job_id for job_id, _ in self.failed]

    def record(self, job_id: int, outcome: Outcome) -> None:
        """Keep the outcome of job ``job_id`` until it is stored."""
        if outcome.ok:
            self.done.append((job_id, outcome.result))
        else:
            self.failed.append((job_id, outcome))

    def results_stored(self) -> None:
        """Forget the results just stored (with a claim)."""
        self.done = []

    def store_failures(self, conn: Any) -> None:
        """Store the failures not stored yet, one by one (after a reconnect: those left)."""
        while self.failed:
            job_id, outcome = self.failed[0]
            stored = sql.fail(
                conn.cursor(),
                job_id,
                self.worker_name,
                outcome.exc_info,
                outcome.move_to_failed,
                outcome.retry,
            )
            self.failed.pop(0)
            log_notices(conn, self.worker_name)
            if not stored:
                logger.warning(
                    "Job %s was no longer started by worker %s when it ended (it was failed "
                    "as abandoned or removed meanwhile); its outcome was not stored",
                    job_id,
                    self.worker_name,
                )

    def flush(self, conn: Any, result_ttl: int) -> None:
        """Store every failure and result held, and release the jobs claimed and not run."""
        self.store_failures(conn)
        if self.done:
            sql.finish_many(conn.cursor(), self.done, self.worker_name, result_ttl)
            self.done = []
        if self.claimed:
            sql.release(conn.cursor(), [job.pk for job in self.claimed], self.worker_name)
            self.claimed = []


def log_notices(conn: Any, worker_name: str) -> None:
    """Log, as warnings, the notices PostgreSQL sent the worker's connection (e.g. an outcome
    the SQL could not store), and forget them."""
    notices = conn.notices
    for notice in notices:
        logger.warning("Worker %s: PostgreSQL said: %s", worker_name, notice.strip())
    notices.clear()
