"""What every section gets: the services, the run's size, and where its figures go."""

from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass, field

from bench import workers
from bench.figures import Figure
from pq import benchmark

DEFAULTS = "defaults"
FAST = "fast"
CLUSTERS = {
    DEFAULTS: "PostgreSQL's defaults: fsync=on synchronous_commit=on full_page_writes=on "
    "(durable: each commit waits for its WAL flush)",
    FAST: "FAST_SETTINGS: fsync=off synchronous_commit=off full_page_writes=off "
    "(python -m bench --fast; not durable, no WAL flush per commit)",
}


@dataclass
class Context:
    """The state of one bench run."""

    dsn: str
    redis_url: str | None
    quick: bool
    cluster: str = DEFAULTS  # DEFAULTS or FAST: the PostgreSQL settings of the run
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    walltimes: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def log(self, message: str) -> None:
        """Print a progress line, with the run's elapsed time."""
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:7.1f} s] {message}", flush=True)
        sys.stdout.flush()

    def note(self, message: str) -> None:
        """Record something the report must say (a skipped measurement, a caveat)."""
        self.log(f"NOTE: {message}")
        self.notes.append(message)

    def add(self, figure: Figure) -> Figure:
        """Record ``figure``, marked with the cluster's settings (``cluster``)."""
        figure.cluster = figure.cluster or self.cluster
        self.figures.append(figure)
        return figure

    def pq_workers(self) -> benchmark.Start:
        """Start ``pqworker`` commands: pq.benchmark.pq_workers's signature (bench/workers.py)."""
        return functools.partial(workers.pq_workers, dsn=self.dsn)

    def rq_workers(self, *, django: bool) -> benchmark.Start:
        """Start django-rq's ``rqworker`` (``django``) or ``rq worker`` commands."""
        return functools.partial(workers.rq_workers, dsn=self.dsn, django=django)
