"""A measured figure, the unit every section returns and the report is built from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class Figure:
    """One number: ``section``/``name``/``metric`` say what, ``value`` in ``unit``."""

    section: str
    name: str
    metric: str
    value: float
    unit: str
    workers: int | None = None
    sleep_ms: float | None = None
    jobs: int | None = None
    seconds: float | None = None
    note: str = ""
    cluster: str = ""  # the PostgreSQL settings measured on: "defaults" or "fast"

    def as_row(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def columns(cls) -> list[str]:
        return [field.name for field in fields(cls)]


def find(
    figures: list[Figure], section: str, name: str, metric: str, workers: int | None = None
) -> Figure | None:
    """Return the figure so named (and with that many workers), None if it was not measured."""
    for figure in figures:
        if (figure.section, figure.name, figure.metric) == (section, name, metric) and (
            workers is None or figure.workers == workers
        ):
            return figure
    return None
