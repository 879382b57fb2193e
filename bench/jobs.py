"""Jobs for the benchmarks, importable by the (forked) workers as ``bench.jobs``."""

from __future__ import annotations

import time


def record_start() -> float:
    """Return the time the job function started (``time.time()``): the wake-up latency's end."""
    return time.time()
