"""Scheduling options as users write them, turned into what ``pq_schedule`` takes.

The rules themselves (the next run, windows, weekdays, cron) are computed in SQL
(sql/schedule.sql, sql/cron.sql); this module only reads the Python spellings of the
seed's API: ``between='2:00/18:30'``, ``weekdays=(MO, TU)``, ``interval=relativedelta(months=1)``,
``repeat=datetime(...)``. Bad values raise ValueError naming the bad part; values this module
passes on but SQL refuses raise pq's InvalidArgument with the database's message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from dateutil.relativedelta import relativedelta
from django.utils import timezone

_WINDOW = re.compile(r"^\s*(\d{1,2})(?:[:.](\d{2}))?\s*[-/]\s*(\d{1,2})(?:[:.](\d{2}))?\s*$")
_ABSOLUTE_FIELDS = ("year", "month", "day", "weekday", "hour", "minute", "second", "microsecond")


@dataclass(frozen=True)
class Plan:
    """A schedule as ``pq_schedule`` takes it."""

    scheduled_for: datetime
    repeat: int = 0
    repeat_until: datetime | None = None
    repeat_interval: str | None = None  # PostgreSQL interval text, e.g. '1 mons -1 days 0 seconds'
    between_start: time | None = None
    between_end: time | None = None
    weekdays: list[int] | None = None
    time_zone: str = "UTC"


def plan(
    at: datetime | date,
    repeat: int | datetime = 0,
    interval: int | float | timedelta | relativedelta | None = 0,
    between: str | tuple[time, time] | None = None,
    weekdays: Any = None,
) -> Plan:
    """Read ``schedule_call``'s options; raise ValueError naming a bad one."""
    zone = current_time_zone()
    count, until = parse_repeat(repeat)
    start, end = parse_between(between)
    return Plan(
        scheduled_for=aware(at, "at"),
        repeat=count,
        repeat_until=until,
        repeat_interval=interval_text(interval),
        between_start=start,
        between_end=end,
        weekdays=parse_weekdays(weekdays),
        time_zone=zone,
    )


def current_time_zone() -> str:
    """Return the name of Django's current time zone, which windows and weekdays are read in."""
    return zone_name(timezone.get_current_timezone())


def zone_name(zone: tzinfo) -> str:
    """Return the IANA name PostgreSQL knows ``zone`` by (``UTC`` for datetime.timezone.utc)."""
    key = getattr(zone, "key", None) or getattr(zone, "zone", None)
    if key:
        return str(key)
    if zone.utcoffset(None) == timedelta(0):
        return "UTC"
    raise ValueError(
        f"time zone {zone!r} has no name PostgreSQL knows; use a zoneinfo.ZoneInfo "
        "such as ZoneInfo('Europe/Paris')"
    )


def aware(value: datetime | date, what: str) -> datetime:
    """Return ``value`` as an aware datetime: naive ones are read in Django's current time
    zone (whatever ``USE_TZ`` says, as Django's own ``make_aware``); a date is its midnight."""
    if isinstance(value, datetime):
        if timezone.is_naive(value):
            return timezone.make_aware(value, timezone.get_current_timezone())
        return value
    if isinstance(value, date):
        return timezone.make_aware(datetime.combine(value, time()), timezone.get_current_timezone())
    raise ValueError(f"{what} must be a datetime or a date, got {value!r}")


def parse_repeat(repeat: int | datetime | date) -> tuple[int, datetime | None]:
    """Return (repeat count, repeat_until) from ``repeat``: -1 (for ever), 0 (run once), N
    (N more runs: N + 1 in all), or a datetime to repeat until."""
    if isinstance(repeat, (datetime, date)):
        return -1, aware(repeat, "repeat")
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < -1:
        raise ValueError(
            f"repeat must be -1 (for ever), 0 (once), a number of repeats or a datetime to "
            f"repeat until, got {repeat!r}"
        )
    return repeat, None


def interval_text(interval: int | float | timedelta | relativedelta | None) -> str | None:
    """Return ``interval`` as PostgreSQL interval text, or None for no interval (0 or None).

    Seconds and timedeltas keep their whole days as days (calendar days in the schedule's
    time zone: 86400 seconds is ``1 days``); a relativedelta keeps its months. Only relative
    relativedelta fields have a meaning here (``months=1``, not ``day=1``).
    """
    if interval is None or (not isinstance(interval, bool) and interval == 0):
        return None
    if isinstance(interval, bool):
        raise ValueError(
            f"interval must be seconds, a timedelta or a relativedelta, got {interval!r}"
        )
    if isinstance(interval, (int, float)):
        interval = timedelta(seconds=interval)
    if isinstance(interval, timedelta):
        if interval < timedelta(seconds=1):
            raise ValueError(f"interval must be at least 1 second, got {interval!r}")
        return _interval(0, interval.days, interval.seconds, interval.microseconds)
    if isinstance(interval, relativedelta):
        absolute = [f for f in _ABSOLUTE_FIELDS if getattr(interval, f) is not None]
        if absolute or interval.leapdays:
            names = ", ".join(absolute + (["leapdays"] if interval.leapdays else []))
            raise ValueError(
                f"interval {interval!r} sets absolute fields ({names}); a repeat interval "
                "takes relative ones only: years, months, weeks, days, hours, minutes, seconds"
            )
        seconds = interval.hours * 3600 + interval.minutes * 60 + interval.seconds
        return _interval(
            interval.years * 12 + interval.months, interval.days, seconds, interval.microseconds
        )
    raise ValueError(f"interval must be seconds, a timedelta or a relativedelta, got {interval!r}")


def _interval(months: int, days: int, seconds: int | float, microseconds: int) -> str:
    total = f"{seconds + microseconds / 1_000_000:.6f}"
    return f"{int(months)} mons {int(days)} days {total} seconds"


def parse_between(between: str | tuple[Any, Any] | None) -> tuple[time | None, time | None]:
    """Return the window ``between`` as (start, end) times.

    Strings as in the seed: ``'2:00/18:30'``, ``'2.00-18.30'``, ``'2-18:30'``; a window whose
    end is before its start crosses midnight (``'22:00-02:00'``). A pair of times works too.
    """
    if between is None:
        return None, None
    if isinstance(between, tuple) and len(between) == 2:
        start, end = (
            _window_end(between, "start", between[0]),
            _window_end(between, "end", between[1]),
        )
    elif isinstance(between, str):
        match = _WINDOW.match(between)
        if match is None:
            raise ValueError(
                f"between {between!r} is not a window; write it as 'H:MM/H:MM', e.g. "
                "'2:00/18:30', '2.00-18.30', '2-18:30' or '22:00-02:00' (crossing midnight)"
            )
        start = _clock(between, "start", match.group(1), match.group(2))
        end = _clock(between, "end", match.group(3), match.group(4))
    else:
        raise ValueError(
            f"between must be a string such as '2:00/18:30' or a pair of times, got {between!r}"
        )
    if start == end:
        raise ValueError(f"between {between!r} is empty: its start and end are both {start}")
    return start, end


def _clock(between: str, which: str, hour: str, minute: str | None) -> time:
    h, m = int(hour), int(minute or 0)
    if h > 23:
        raise ValueError(f"between {between!r}: the {which} hour {h} is not 0-23")
    if m > 59:
        raise ValueError(f"between {between!r}: the {which} minute {m} is not 0-59")
    return time(h, m)


def _window_end(between: Any, which: str, value: Any) -> time:
    if isinstance(value, time):
        return value
    raise ValueError(f"between {between!r}: its {which} must be a datetime.time, got {value!r}")


def parse_weekdays(weekdays: Any) -> list[int] | None:
    """Return ``weekdays`` as integers 0 (Monday) to 6: dateutil's MO..SU or integers."""
    if weekdays is None:
        return None
    if isinstance(weekdays, (int, str)) or hasattr(weekdays, "weekday"):
        weekdays = (weekdays,)
    days: list[int] = []
    for day in weekdays:
        if hasattr(day, "weekday") and not isinstance(day, (date, datetime)):
            if getattr(day, "n", None):
                raise ValueError(
                    f"weekday {day!r} names the nth weekday of a month; pass plain {day.weekday} "
                    "or dateutil's weekday without (n)"
                )
            number = day.weekday
        elif isinstance(day, int) and not isinstance(day, bool):
            number = day
        else:
            raise ValueError(
                f"weekday {day!r} is not a day: use dateutil's MO..SU or 0 (Monday) to 6"
            )
        if not 0 <= number <= 6:
            raise ValueError(f"weekday {day!r} is not a day: weekdays are 0 (Monday) to 6 (Sunday)")
        days.append(number)
    if not days:
        raise ValueError("weekdays is empty: the job could never run; pass None for every day")
    return sorted(set(days))
