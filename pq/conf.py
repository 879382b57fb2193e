"""The PQ_* settings, read in one place, at call time (so tests and overrides see changes)."""

from __future__ import annotations

from django.conf import settings

DEFAULTS: dict[str, object] = {
    "PQ_DEFAULT_RESULT_TTL": 500,
    "PQ_DEFAULT_WORKER_TTL": 420,
    "PQ_DEFAULT_JOB_TIMEOUT": 600,
    "PQ_ADMIN_CONNECTION": "default",
    "PQ_QUEUE_CACHE": True,
    "PQ_HUGE_PAGES": True,
}


def get(name: str) -> object:
    """Return the value of setting ``name``, or its documented default."""
    return getattr(settings, name, DEFAULTS[name])


def default_result_ttl() -> int:
    """Seconds a finished job is kept: 0 deletes it at once, -1 keeps it forever."""
    return int(get("PQ_DEFAULT_RESULT_TTL"))  # type: ignore[call-overload]


def default_worker_ttl() -> int:
    """Seconds an idle worker waits for a notification before it polls the database."""
    return int(get("PQ_DEFAULT_WORKER_TTL"))  # type: ignore[call-overload]


def default_job_timeout() -> int:
    """Seconds a job may run before its work horse is killed."""
    return int(get("PQ_DEFAULT_JOB_TIMEOUT"))  # type: ignore[call-overload]


def admin_connection() -> str:
    """The database alias the admin reads jobs and workers from."""
    return str(get("PQ_ADMIN_CONNECTION"))


def queue_cache() -> bool:
    """Whether Queue.create returns cached Queue objects."""
    return bool(get("PQ_QUEUE_CACHE"))


def huge_pages() -> bool:
    """Whether forking workers back their heap with huge pages (pq.hugepages)."""
    return bool(get("PQ_HUGE_PAGES"))
