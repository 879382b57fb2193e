"""Python reference for sql/zone.sql: the instant a wall-clock time occurs in a time zone.

The rule (documented in sql/zone.sql and README): a wall-clock time skipped by a
daylight-saving change is the first instant after the gap; a wall-clock time that
occurs twice is its first occurrence. Built on zoneinfo only, independently of the SQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo


def local(instant: datetime, zone: str) -> datetime:
    """Return the naive wall-clock time of an aware ``instant`` in ``zone``."""
    return instant.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def exists(wall: datetime, zone: str) -> bool:
    """Tell whether the naive wall-clock time ``wall`` occurs at all in ``zone``."""
    tz = ZoneInfo(zone)
    return any(
        local(wall.replace(tzinfo=tz, fold=fold).astimezone(UTC), zone) == wall for fold in (0, 1)
    )


def zoned(wall: datetime, zone: str) -> datetime:
    """Return the instant (aware, UTC) at which the clocks of ``zone`` show ``wall``.

    fold=0 is the first occurrence of a repeated time; for a skipped time, zoneinfo's
    fold=0 reads it at the offset before the gap, which lands after the gap: the gap's end
    is found by bisecting (to the second) between the instants either side.
    """
    tz = ZoneInfo(zone)
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if local(first, zone) == wall:
        return first
    high = first
    low = first - (local(first, zone) - wall)
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        mid = mid.replace(microsecond=0)
        if mid <= low:
            break
        if local(mid, zone) > wall:
            high = mid
        else:
            low = mid
    return high
