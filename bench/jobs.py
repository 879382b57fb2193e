"""Jobs for the benchmarks, importable by the worker commands as ``bench.jobs``.

bench/workers.py puts the repository on their PYTHONPATH.
"""

from __future__ import annotations

import time


def record_start() -> float:
    """Return the time the job function started (``time.time()``): the wake-up latency's end."""
    return time.time()
