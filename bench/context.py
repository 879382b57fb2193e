"""What every section gets: the services, the run's size, and where its figures go."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from bench.figures import Figure


@dataclass
class Context:
    """The state of one bench run."""

    dsn: str
    redis_url: str | None
    quick: bool
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
        self.figures.append(figure)
        return figure
