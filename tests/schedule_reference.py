"""Python reference for ``_pq_next_run`` (sql/schedule.sql): the next run of a repeating job.

Written from the design's definitions (SPEC "Repeating jobs" > "Next run", as amended: run 0
is the origin, and grid points outside the window or weekdays are skipped, not moved),
independently of the SQL, on dateutil (relativedelta for month steps, rrule for allowed
days) and tests/zone_reference (the DST rule). With L(t) the wall-clock time of instant t in
the zone and Z(w) = zoned(w, zone):

1. The grid of interval I = (months m, days d, time part u) from origin o: cand(0) = o; for
   k >= 1,
   m = 0, d = 0: cand(k) = o + k*u   (elapsed time, no wall clock);
   m = 0, d > 0: cand(k) = Z(L(o) + k*d days) + k*u   (calendar days, u elapsed time);
   m > 0:        cand(k) = Z(L(o) + k*m months + d days) + u   (months step from the
   origin, month ends clamping like PostgreSQL's timestamp + interval and relativedelta:
   Jan 31 + 1 month = Feb 28; then days; the time part is elapsed time).
2. allowed(t): L(t)'s time of day is in the window (start <= time <= end; a window crossing
   midnight, start > end: time >= start or time <= end, a time <= end belonging to the
   window that opened the day before) and the window's day's weekday (0 = Monday) is in
   weekdays. No window: every time; no weekdays: every day.
3. adjust(t): t if allowed, else the next window opening Z(date + start) on the first date
   from L(t)'s date on whose weekday is allowed and whose opening is >= t (without a
   window, the start is midnight); None when no weekday is allowed.
4. next(after): c = cand(k0), k0 the first k with cand(k) > after; up to 50 times: if
   allowed(c), that is the run; else c = the first grid point >= adjust(c). When 50 grid
   points were not allowed, the run is adjust(cand(k0)) (a grid that never meets the
   window still runs). None when no weekday is allowed.

The grid increases with k, so "the first k with cand(k) > t" is found by bisection.
``Schedule.first_allowed_brute`` walks the grid point by point (the first allowed grid point
after ``after``, what the jumps of rule 4 find), to check the jumps on small spans.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from dateutil.relativedelta import relativedelta
from dateutil.rrule import DAILY, rrule

from tests.zone_reference import local, zoned

MIDNIGHT = time(0)
JUMPS = 50  # grid points tried by rule 4 before falling back to adjust(cand(k0))
# Far more days than ever needed to find an allowed day (the design needs at most 8 dates:
# today, whose opening may have passed, and the 7 after it).
DAYS_TO_SEARCH = 15


@dataclass(frozen=True)
class Schedule:
    """A repeating job's rule: origin, interval (PostgreSQL's fields), window, weekdays, zone."""

    origin: datetime  # repeat_from, aware
    months: int = 0
    days: int = 0
    micros: int = 0  # the interval's time part, in microseconds
    between_start: time | None = None
    between_end: time | None = None
    weekdays: frozenset[int] | None = None  # 0 = Monday
    zone: str = "UTC"

    def __post_init__(self) -> None:
        if self.origin.tzinfo is None:
            raise ValueError("origin must be aware")
        if (self.between_start is None) != (self.between_end is None):
            raise ValueError("a window needs both its start and its end")
        if self.weekdays is not None and not set(self.weekdays) <= set(range(7)):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday)")

    # 1. The grid.
    def candidate(self, k: int) -> datetime:
        """cand(k), aware."""
        if k == 0 or self.months == self.days == 0:
            return self.origin + timedelta(microseconds=k * self.micros)
        wall = local(self.origin, self.zone)
        if self.months == 0:
            stepped = zoned(wall + timedelta(days=k * self.days), self.zone)
            return stepped + timedelta(microseconds=k * self.micros)
        stepped = zoned(wall + relativedelta(months=k * self.months, days=self.days), self.zone)
        return stepped + timedelta(microseconds=self.micros)

    def first_index(self, t: datetime, *, inclusive: bool) -> int:
        """The first k >= 0 with cand(k) > t (>= t when inclusive), by bisection."""

        def beyond(k: int) -> bool:
            return self.candidate(k) >= t if inclusive else self.candidate(k) > t

        if beyond(0):
            return 0
        low, high = 0, 1  # not beyond(low)
        while not beyond(high):
            low, high = high, high * 2
        while high - low > 1:
            middle = (low + high) // 2
            if beyond(middle):
                high = middle
            else:
                low = middle
        return high

    # 2. Allowed instants.
    def window_day(self, t: datetime) -> date | None:
        """The day whose window holds t (L(t)'s date, or the day before for the morning part
        of a window crossing midnight); None when L(t)'s time of day is outside the window."""
        wall = local(t, self.zone)
        start, end, clock = self.between_start, self.between_end, wall.time()
        if start is None or end is None:
            return wall.date()
        if start < end:
            return wall.date() if start <= clock <= end else None
        if clock >= start:
            return wall.date()
        if clock <= end:
            return wall.date() - timedelta(days=1)
        return None

    def weekday_allowed(self, day: date) -> bool:
        return self.weekdays is None or day.weekday() in self.weekdays

    def allowed(self, t: datetime) -> bool:
        day = self.window_day(t)
        return day is not None and self.weekday_allowed(day)

    # 3. adjust.
    def allowed_days(self, first: date) -> Iterable[date]:
        """The dates from ``first`` on whose weekday is allowed (rrule on naive dates)."""
        weekdays = None if self.weekdays is None else sorted(self.weekdays)
        if weekdays == []:
            return []
        rule = rrule(
            DAILY,
            dtstart=datetime.combine(first, MIDNIGHT),
            byweekday=weekdays,
            until=datetime.combine(first + timedelta(days=DAYS_TO_SEARCH), MIDNIGHT),
        )
        return (occurrence.date() for occurrence in rule)

    def adjust(self, t: datetime) -> datetime | None:
        """t if allowed, else the next window opening (or allowed midnight) not before t;
        None when no weekday is allowed."""
        if self.allowed(t):
            return t
        opening = MIDNIGHT if self.between_start is None else self.between_start
        for day in self.allowed_days(local(t, self.zone).date()):
            at = zoned(datetime.combine(day, opening), self.zone)
            if at >= t:
                return at
        return None

    # 4. The next run.
    def next_run(self, after: datetime) -> datetime | None:
        """The run after ``after``: the first allowed grid point, jumping from window to
        window at most JUMPS times, else adjust(cand(k0))."""
        first = run = self.candidate(self.first_index(after, inclusive=False))
        for _ in range(JUMPS):
            if self.allowed(run):
                return run
            opening = self.adjust(run)
            if opening is None:
                return None
            run = self.candidate(self.first_index(opening, inclusive=True))
        return self.adjust(first)

    def first_allowed_brute(self, after: datetime, max_k: int) -> datetime | None:
        """The first allowed grid point after ``after``, trying cand(k0), cand(k0 + 1), ...
        up to cand(max_k); None if none of them is allowed."""
        for k in range(self.first_index(after, inclusive=False), max_k + 1):
            run = self.candidate(k)
            if self.allowed(run):
                return run
        return None


def next_run(
    after: datetime,
    repeat_from: datetime,
    months: int,
    days: int,
    micros: int,
    between_start: time | None,
    between_end: time | None,
    weekdays: Iterable[int] | None,
    zone: str,
) -> datetime | None:
    """``_pq_next_run(after, repeat_from, interval (months, days, micros), between_start,
    between_end, weekdays, time_zone)``, as an aware datetime in UTC."""
    schedule = Schedule(
        origin=repeat_from,
        months=months,
        days=days,
        micros=micros,
        between_start=between_start,
        between_end=between_end,
        weekdays=None if weekdays is None else frozenset(weekdays),
        zone=zone,
    )
    run = schedule.next_run(after)
    return None if run is None else run.astimezone(UTC)
