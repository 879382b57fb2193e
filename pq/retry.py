"""Retries and priorities: the options a job carries into SQL, checked before they go there."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MIN_PRIORITY, MAX_PRIORITY = -100, 100


class Retry:
    """Run a failed job again, as RQ's ``Retry``: ``Retry(max=3, interval=[10, 30, 60])``.

    ``max`` is how many times a failed run is retried (0: never); ``interval`` the seconds to
    wait before each retry, one number for all or a list (the last one repeats). The retry
    is planned in SQL by whatever records the failure (an exception, a timeout, a dead work
    horse, a dead worker's abandoned job); only when the retries are used up is the job
    failed for good.
    """

    def __init__(self, max: int, interval: int | Sequence[int] = 0) -> None:  # noqa: A002 (RQ's name)
        if not _is_int(max) or max < 0:
            raise ValueError(f"Retry(max=...) must be a whole number, 0 or more, got {max!r}")
        intervals = [interval] if _is_int(interval) else interval
        if (
            isinstance(intervals, str)
            or not isinstance(intervals, Sequence)
            or not intervals
            or not all(_is_int(seconds) and seconds >= 0 for seconds in intervals)
        ):
            raise ValueError(
                "Retry(interval=...) must be seconds, 0 or more: a whole number or a non-empty "
                f"list of them, got {interval!r}"
            )
        self.max = max
        self.intervals = list(intervals)

    def __repr__(self) -> str:
        return f"Retry(max={self.max}, interval={self.intervals})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Retry) and (self.max, self.intervals) == (
            other.max,
            other.intervals,
        )

    def __hash__(self) -> int:
        return hash((self.max, tuple(self.intervals)))


def job_options(priority: Any, retry: Retry | None) -> dict[str, Any]:
    """The SQL arguments of a job's priority and retry (priority, max_retries,
    retry_intervals), each checked: ValueError or TypeError naming a bad one."""
    return {"priority": check_priority(priority), **retry_options(retry)}


def retry_options(retry: Retry | None) -> dict[str, Any]:
    """The SQL arguments of ``retry``: max_retries and retry_intervals."""
    if retry is None:
        return {"max_retries": 0, "retry_intervals": None}
    if not isinstance(retry, Retry):
        raise TypeError(f"retry must be a pq.Retry, e.g. Retry(max=3, interval=60), got {retry!r}")
    return {"max_retries": retry.max, "retry_intervals": retry.intervals}


def check_priority(priority: Any) -> int:
    """Return ``priority`` if it is a whole number from -100 to 100 (Django's range)."""
    if not _is_int(priority) or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise ValueError(
            f"priority must be a whole number from {MIN_PRIORITY} to {MAX_PRIORITY} "
            f"(higher runs first), got {priority!r}"
        )
    return priority


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
