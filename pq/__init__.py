"""django-pq: a PostgreSQL task queue for Django whose queue logic lives in PL/pgSQL."""

from __future__ import annotations

from typing import Any

__version__ = "0.4.0"
__all__ = [
    "Flow",
    "Job",
    "JobStatus",
    "Queue",
    "Retry",
    "SerialQueue",
    "Worker",
    "get_failed_queue",
    "unschedule",
]


def __getattr__(name: str) -> Any:
    # Lazy, so that listing "pq" in INSTALLED_APPS does not import models before apps are ready.
    if name in ("Queue", "SerialQueue", "get_failed_queue", "unschedule"):
        from pq import queue

        return getattr(queue, name)
    if name in ("Job", "JobStatus"):
        from pq import models

        return getattr(models, name)
    if name == "Retry":
        from pq.retry import Retry

        return Retry
    if name == "Flow":
        from pq.flow import Flow

        return Flow
    if name == "Worker":
        from pq.worker import Worker

        return Worker
    raise AttributeError(f"module 'pq' has no attribute {name!r}")
