"""The job of the chaos test: record each start of a job in a shared log, then take a while."""

from __future__ import annotations

import os
import time


def record_start(number: int, log_path: str, sleep_ms: int) -> int:
    """Append ``number`` to ``log_path`` (one atomic O_APPEND write), sleep, return it."""
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{number}\n".encode())
    finally:
        os.close(fd)
    time.sleep(sleep_ms / 1000)
    return number
