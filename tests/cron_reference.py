"""Python reference for sql/cron.sql's pq_cron_next, built on croniter (a test dependency).

The rule (documented in sql/cron.sql): a cron expression's fields are wall-clock time in a
time zone; each wall-clock tick is the instant ``tests.zone_reference.zoned`` gives it (a
tick skipped by a daylight-saving change is the end of the gap, a repeated one its first
occurrence), and the next tick after an instant is the first such instant strictly after it.

croniter computes the ticks on naive datetimes, that is on wall-clock time with no zone
and no DST at all; this module only maps them to instants. It starts a margin before the
wall-clock time of ``after`` so as not to rely on the SQL's argument that earlier ticks
cannot map past ``after``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from croniter import croniter

from tests.zone_reference import local, zoned

# More than any zone's daylight-saving shift (2 hours at most, Antarctica/Troll).
MARGIN = timedelta(hours=3)
# Ticks looked at before giving up: a margin of every-minute ticks plus the DST pass.
LIMIT = 10_000


def cron_next(expr: str, after: datetime, zone: str = "UTC") -> datetime:
    """Return the first tick of ``expr`` strictly after the aware instant ``after``, its
    fields read as wall-clock time in ``zone`` (an aware datetime in UTC).

    Raises croniter's CroniterBadDateError when the expression never fires.
    """
    ticks = croniter(expr, local(after, zone) - MARGIN)
    for _ in range(LIMIT):
        wall = ticks.get_next(datetime)
        instant = zoned(wall, zone)
        if instant > after:
            return instant
    raise AssertionError(f"no tick of {expr!r} after {after} in {zone} within {LIMIT} ticks")
