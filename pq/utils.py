"""Small jobs that ship with django-pq, for trying a worker out and for benchmarks."""

from __future__ import annotations

import logging
import time
from typing import Any

logger = logging.getLogger("pq")


def test_job(*args: Any, **kwargs: Any) -> str:
    """Log that a test job ran and return a message (``manage.py pqenqueue pq.utils.test_job``)."""
    logger.info("Test job ran with args %r and kwargs %r", args, kwargs)
    return "test job done"


def do_nothing(sleep_ms: float = 0) -> None:
    """Sleep ``sleep_ms`` milliseconds, then return: the benchmark's job."""
    if sleep_ms:
        time.sleep(sleep_ms / 1000)
