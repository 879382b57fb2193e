"""Errors raised by django-pq. SQL functions raise SQLSTATEs of class PQ; pq.sql maps them here."""

from __future__ import annotations


class PQError(Exception):
    """A django-pq error."""


class InvalidArgument(PQError, ValueError):
    """An argument given to a pq SQL function is invalid (SQLSTATE PQ001)."""


class UnknownQueueOption(InvalidArgument):
    """A queue was created with an option pq does not know (SQLSTATE PQ002)."""


class NoSuchJob(PQError, LookupError):
    """No job has that id: it was never enqueued, was deleted, or its result expired (PQ003)."""


class NoSuchFlow(PQError, LookupError):
    """No flow has that id: it was never made, was rolled back, or expired with its final
    job (PQ007)."""


class InvalidJobState(PQError):
    """The job's state does not allow the call, e.g. requeueing a job that did not fail (PQ004)."""


class WorkerNameTaken(PQError):
    """A live worker is already registered under that name (PQ005)."""


class WorkerNotRegistered(PQError):
    """The worker is not registered (PQ006): it never was, or it was reaped after its
    heartbeat expired. Register again (``pq_register_worker``) before claiming jobs."""


class SchemaVersionMismatch(PQError):
    """The installed django-pq SQL is not the version this code calls: migrate, or update."""


class JobTimeoutException(PQError):
    """The job ran longer than its timeout and its work horse was killed."""


class WorkHorseDied(PQError):
    """The work horse process ended without reporting a result (it exited, or was killed)."""


class WorkerStopped(PQError):
    """The worker was stopped by force while the job was running."""


SQLSTATE_ERRORS: dict[str, type[PQError]] = {
    "PQ001": InvalidArgument,
    "PQ002": UnknownQueueOption,
    "PQ003": NoSuchJob,
    "PQ004": InvalidJobState,
    "PQ005": WorkerNameTaken,
    "PQ006": WorkerNotRegistered,
    "PQ007": NoSuchFlow,
}
