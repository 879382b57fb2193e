"""_pq_next_run (sql/schedule.sql) against its Python reference (tests/schedule_reference.py).

Hypothesis draws repeating-job rules (interval grids of seconds, days, days and time, months
with day and time offsets; windows, also crossing midnight or with an edge in a DST gap;
weekdays; zones with odd DST rules; grid points aimed at DST changes) and an ``after`` from
the origin's day before to years later, near grid points and window openings, and compares
the SQL with the reference. A few readable examples pin down the rules the design spells
out: run 0 is the origin, grid points outside the window or weekdays are skipped (not
moved), a grid that never meets the window runs at the window's openings.
"""

from __future__ import annotations

import functools
import time as timer
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg2
import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from psycopg2.extensions import connection

from tests.schedule_reference import Schedule, next_run
from tests.sql.helpers import fetch_value
from tests.zone_reference import local, zoned

NEXT_RUN = (
    "SELECT _pq_next_run(%s, %s, make_interval(months => %s, days => %s, secs => %s),"
    " %s, %s, %s::smallint[], %s)"
)
NEW_YORK = "America/New_York"
ZONES = (
    "UTC",
    NEW_YORK,
    "Europe/London",
    "Europe/Paris",
    "Australia/Lord_Howe",  # 30-minute DST, changes at 02:00
    "America/Santiago",  # changes at midnight (24:00 -> 01:00, 24:00 -> 23:00)
    "Pacific/Apia",  # DST 2010-2021; skipped 2011-12-30 entirely
    "Asia/Kolkata",  # +05:30, no DST
)
SECOND = 1_000_000  # microseconds
DAY = 86_400 * SECOND
# Wall-clock times around DST changes (02:00-03:00 New York and Paris, 01:00-02:00 London,
# 02:00-02:30 Lord Howe, midnight Santiago) and midnight, for origins and window edges.
EDGE_TIMES = tuple(
    time.fromisoformat(text)
    for text in (
        "00:00", "00:30", "00:59:59", "01:00", "01:30", "01:59:59", "02:00", "02:15", "02:30",
        "02:59:59", "03:00", "03:30", "12:00", "22:00", "23:00", "23:30", "23:59:59",
    )
)  # fmt: skip
FIRST_DAY, LAST_DAY = date(1990, 1, 1), date(2090, 12, 31)
MIDNIGHT = time(0)
MINUTE, SECOND_DELTA = timedelta(minutes=1), timedelta(seconds=1)
LENGTHS = (timedelta(minutes=30), timedelta(hours=1), timedelta(hours=3))  # of aimed windows
# Intervals whose grid meets round window edges (a grid point exactly at an opening).
ROUND_SECONDS = (60, 300, 420, 900, 1_800, 3_600, 5_400, 7_200, 10_800, 43_200, 86_400)


@pytest.fixture(scope="module")
def conn(dsn: str) -> Iterator[connection]:
    """One autocommit connection for the module (hypothesis runs many examples per test)."""
    opened = psycopg2.connect(dsn)
    opened.autocommit = True
    try:
        yield opened
    finally:
        opened.close()


def sql_next_run(conn: connection, schedule: Schedule, after: datetime) -> datetime | None:
    """Call _pq_next_run for ``schedule`` and ``after``."""
    weekdays = None if schedule.weekdays is None else sorted(schedule.weekdays)
    return fetch_value(
        conn,
        NEXT_RUN,
        (
            after,
            schedule.origin,
            schedule.months,
            schedule.days,
            Decimal(schedule.micros).scaleb(-6),  # exact: PostgreSQL rounds secs to the µs
            schedule.between_start,
            schedule.between_end,
            weekdays,
            schedule.zone,
        ),
    )


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


def wall(zone: str, *fields: int) -> datetime:
    """The instant the clocks of ``zone`` show the given wall-clock time (DST rule applied)."""
    return zoned(datetime(*fields), zone)


# Strategies.


@functools.cache
def transitions(zone: str) -> tuple[tuple[datetime, datetime], ...]:
    """The zone's UTC-offset changes 1990-2090, each as the wall-clock times just before and
    just after it: a gap (spring forward) when the first is earlier, else a repeated span.
    Offsets are compared month to month: a month with two changes is left out."""
    tz = ZoneInfo(zone)

    def offset(instant: datetime) -> timedelta:
        found = instant.astimezone(tz).utcoffset()
        assert found is not None
        return found

    found: list[tuple[datetime, datetime]] = []
    month = datetime.combine(FIRST_DAY, MIDNIGHT, UTC)
    while month.date() < LAST_DAY:
        following = month + relativedelta(months=1)
        before, after = offset(month), offset(following)
        if before != after:
            low, high = month, following  # offset(low) == before != offset(high)
            while high - low > SECOND_DELTA:
                middle = (low + (high - low) / 2).replace(microsecond=0)
                if offset(middle) == before:
                    low = middle
                else:
                    high = middle
            change = high.replace(tzinfo=None)
            found.append((change + before, change + offset(high)))
        month = following
    return tuple(found)


def transition_days(zone: str) -> tuple[date, ...]:
    """Local dates of the zone's UTC-offset changes, 1990-2090."""
    return tuple(min(walls).date() for walls in transitions(zone))


@st.composite
def local_days(draw: st.DrawFn, zone: str) -> date:
    """A date 1990-2090: any, near one of the zone's DST changes, or the 29th to 31st."""
    choices = [st.dates(FIRST_DAY, LAST_DAY), month_ends()]
    if transition_days(zone):
        near_change = st.tuples(st.sampled_from(transition_days(zone)), st.integers(-2, 2)).map(
            lambda pair: pair[0] + timedelta(days=pair[1])
        )
        choices.append(near_change)
    return draw(st.one_of(choices))


@st.composite
def month_ends(draw: st.DrawFn) -> date:
    year, month = draw(st.integers(1990, 2090)), draw(st.integers(1, 12))
    last = ((date(year, month, 1) + relativedelta(months=1)) - timedelta(days=1)).day
    return date(year, month, draw(st.integers(29, 31).map(lambda day: min(day, last))))


clock_times = st.one_of(
    st.sampled_from(EDGE_TIMES),
    st.times().map(lambda at: at.replace(microsecond=0)),
    st.times(),
)


@st.composite
def intervals(draw: st.DrawFn, *, calendar: bool = False) -> tuple[int, int, int, bool]:
    """(months, days, micros, origin on the 1st) of a valid interval (with days or months
    when ``calendar``)."""
    kinds = ["days", "days+time", "months"]
    kind = draw(st.sampled_from(kinds if calendar else ["seconds", *kinds, "month ends"]))
    if kind == "seconds":
        micros = draw(
            st.one_of(
                st.sampled_from(ROUND_SECONDS).map(lambda secs: secs * SECOND),
                st.integers(1, 3 * 86_400).map(lambda secs: secs * SECOND),
                st.integers(SECOND, 3 * DAY),
            )
        )
        return 0, 0, micros, False
    if kind == "days":
        return 0, draw(st.integers(1, 40)), 0, False
    if kind == "days+time":
        micros = draw(
            st.one_of(
                st.integers(1, 86_399).map(lambda secs: secs * SECOND),
                st.integers(1, 2 * DAY),
            )
        )
        return 0, draw(st.integers(1, 40)), micros, False
    if kind == "months":
        micros = draw(
            st.one_of(
                st.just(0),
                st.integers(-86_399, 86_399).map(lambda secs: secs * SECOND),
                st.integers(-DAY, DAY),
            )
        )
        return draw(st.integers(1, 24)), draw(st.integers(-3, 3)), micros, False
    return 1, -1, 0, True  # relativedelta(months=1, days=-1) from the 1st: month ends


@st.composite
def windows(draw: st.DrawFn) -> tuple[time | None, time | None]:
    """No window, a window within a day (start < end) or one crossing midnight."""
    kind = draw(st.sampled_from(["none", "day", "night", "night"]))
    if kind == "none":
        return None, None
    first = draw(clock_times)
    second = draw(clock_times.filter(lambda at: at != first))
    low, high = min(first, second), max(first, second)
    return (low, high) if kind == "day" else (high, low)


weekday_sets = st.one_of(
    st.none(),
    st.frozensets(st.integers(0, 6), min_size=1, max_size=3),
    st.frozensets(st.integers(0, 6), min_size=1, max_size=7),
)


@st.composite
def schedules(draw: st.DrawFn, *, aim: bool = False) -> tuple[Schedule, int | None]:
    """A schedule, and the index of the grid point aimed at a DST change (or None); always
    aimed when ``aim``."""
    zone = draw(st.sampled_from([zone for zone in ZONES if transitions(zone)] if aim else ZONES))
    months, days, micros, on_first = draw(intervals(calendar=aim))
    day = draw(local_days(zone))
    if on_first:
        day = day.replace(day=1)
    elif (months or days) and transitions(zone) and (aim or draw(st.booleans())):
        # Aim grid point `aimed` at a DST change: its wall-clock time in the gap or the
        # repeated span (at either edge or inside), run 0 that many steps before.
        first, second = draw(st.sampled_from(transitions(zone)))
        span = abs(second - first)
        into = draw(
            st.one_of(
                st.sampled_from([timedelta(0), span / 2, span - SECOND_DELTA]),
                st.integers(1, span // timedelta(seconds=1) - 1).map(lambda n: n * SECOND_DELTA),
            )
        )
        target, aimed = min(first, second) + into, draw(st.integers(1, 12))
        since_midnight = target - datetime.combine(target.date(), MIDNIGHT)
        window = None
        if since_midnight >= MINUTE and draw(st.booleans()):
            # Or aim a window's opening there, the grid point a little earlier that day.
            target -= draw(st.integers(1, since_midnight // timedelta(minutes=1))) * MINUTE
            opened = (datetime.combine(target.date(), MIDNIGHT) + since_midnight).time()
            closed = datetime.combine(target.date(), opened) + draw(st.sampled_from(LENGTHS))
            window = (opened, closed.time())
        if months:
            origin_wall = target - relativedelta(months=aimed * months, days=days)
        else:
            origin_wall = target - aimed * timedelta(days)
        origin = zoned(origin_wall, zone)
        return schedule_with(draw, origin, months, days, micros, zone, window), aimed
    origin = zoned(datetime.combine(day, draw(clock_times)), zone)
    # Also an instant an hour or half an hour on: the second occurrence of a repeated time.
    origin += draw(st.sampled_from([timedelta(0), timedelta(minutes=30), timedelta(hours=1)]))
    return schedule_with(draw, origin, months, days, micros, zone), None


def schedule_with(
    draw: st.DrawFn,
    origin: datetime,
    months: int,
    days: int,
    micros: int,
    zone: str,
    window: tuple[time, time] | None = None,
) -> Schedule:
    """The schedule of this grid, with this window or one drawn, and weekdays drawn."""
    start, end = window or draw(windows())
    return Schedule(
        origin=origin,
        months=months,
        days=days,
        micros=micros,
        between_start=start,
        between_end=end,
        weekdays=draw(weekday_sets),
        zone=zone,
    )


tiny_offsets = st.sampled_from(
    [timedelta(0), timedelta(microseconds=1), -timedelta(microseconds=1)]
)
offsets = st.one_of(
    tiny_offsets,
    st.integers(-3_600, 3_600).map(lambda secs: timedelta(seconds=secs)),
)


@st.composite
def afters(draw: st.DrawFn, schedule: Schedule, max_step: int) -> datetime:
    """An instant around the schedule: anywhere from the origin's day before to 5 years on,
    or on (or next to) a grid point or its adjusted run."""
    kind = draw(st.sampled_from(["span", "grid", "run"]))
    if kind == "span":
        return schedule.origin + timedelta(
            microseconds=draw(st.integers(-DAY, 5 * 366 * DAY))
        )  # fmt: skip
    point = schedule.candidate(draw(st.integers(0, max_step)))
    if kind == "run":
        point = schedule.adjust(point) or point
    return point + draw(offsets)


@st.composite
def cases(draw: st.DrawFn, max_step: int = 400, *, aim: bool = False) -> tuple[Schedule, datetime]:
    """A schedule and an ``after``; with ``aim``, a grid point (or a window opening) at a DST
    change and ``after`` just before it."""
    schedule, aimed = draw(schedules(aim=aim))
    if aimed is not None and (aim or draw(st.booleans())):
        # Just before the grid point aimed at a DST change, or just after the one before.
        point = schedule.candidate(aimed - draw(st.integers(0, 1)))
        return schedule, point + draw(tiny_offsets)
    return schedule, draw(afters(schedule, max_step))


def describe(schedule: Schedule, after: datetime) -> str:
    zone = schedule.zone
    return (
        f"after={after.isoformat()} (local {local(after, zone)}), "
        f"origin local {local(schedule.origin, zone)} {zone}, "
        f"interval months={schedule.months} days={schedule.days} "
        f"time={timedelta(microseconds=schedule.micros)}, "
        f"window={schedule.between_start}-{schedule.between_end}, "
        f"weekdays={None if schedule.weekdays is None else sorted(schedule.weekdays)}"
    )


def shown(run: datetime | None, zone: str) -> str:
    return "None" if run is None else f"{run.astimezone(UTC)} (local {local(run, zone)})"


# The properties.

PROPERTY = settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY
@given(cases())
def test_next_run_matches_the_reference(conn: connection, case: tuple[Schedule, datetime]) -> None:
    schedule, after = case
    note(describe(schedule, after))
    expected = schedule.next_run(after)
    note(f"reference: {shown(expected, schedule.zone)}")
    got = sql_next_run(conn, schedule, after)
    note(f"sql: {shown(got, schedule.zone)}")
    assert got == expected
    assert got is not None and got > after


@settings(PROPERTY, max_examples=150)
@given(cases(aim=True))
def test_next_run_matches_the_reference_at_dst_changes(
    conn: connection, case: tuple[Schedule, datetime]
) -> None:
    schedule, after = case
    note(describe(schedule, after))
    expected = schedule.next_run(after)
    note(f"reference: {shown(expected, schedule.zone)}")
    got = sql_next_run(conn, schedule, after)
    note(f"sql: {shown(got, schedule.zone)}")
    assert got == expected


@settings(PROPERTY, max_examples=150)
@given(cases(max_step=60))
def test_the_reference_jumps_find_the_first_allowed_grid_point(
    case: tuple[Schedule, datetime],
) -> None:
    """Rule 4's jumps from window to window skip no allowed grid point: the run is the first
    allowed grid point after ``after`` (walked point by point) unless that is so far that
    the 50 jumps run out, and then the run is adjust(cand(k0))."""
    schedule, after = case
    note(describe(schedule, after))
    run = schedule.next_run(after)
    note(f"reference: {shown(run, schedule.zone)}")
    k0 = schedule.first_index(after, inclusive=False)
    assert run is not None and run > after
    walked = schedule.first_allowed_brute(after, max_k=k0 + 2_000)
    note(f"walked: {shown(walked, schedule.zone)}")
    first, fallback = schedule.candidate(k0), schedule.adjust(schedule.candidate(k0))
    if walked is not None and walked - first < timedelta(days=40):
        assert run == walked  # 40 days hold fewer than 50 windows
    elif walked is not None:
        assert run in (walked, fallback)
    else:  # no allowed grid point in 2,000 steps: the fallback, or an allowed one beyond
        on_grid = run == schedule.candidate(schedule.first_index(run, inclusive=True))
        beyond = run > schedule.candidate(k0 + 2_000)
        assert run == fallback or (on_grid and beyond and schedule.allowed(run))


# Readable examples, against the SQL and the reference.


def runs(conn: connection, schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    """``count`` successive runs, each the next run after the one before (the reference
    agreeing at each step)."""
    found: list[datetime] = []
    for _ in range(count):
        run = sql_next_run(conn, schedule, after)
        assert run is not None
        assert run == schedule.next_run(after)
        found.append(run)
        after = run
    return found


def test_daily_at_three_in_new_york_stays_at_three_across_both_dst_changes(
    conn: connection,
) -> None:
    schedule = Schedule(origin=wall(NEW_YORK, 2025, 3, 1, 3), days=1, zone=NEW_YORK)
    spring = runs(conn, schedule, wall(NEW_YORK, 2025, 3, 7, 3), 4)
    assert spring == [wall(NEW_YORK, 2025, 3, day, 3) for day in (8, 9, 10, 11)]
    assert spring[1] == utc(2025, 3, 9, 7)  # 03:00 EDT, 23 hours after the run before
    autumn = runs(conn, schedule, wall(NEW_YORK, 2025, 10, 31, 3), 4)
    assert autumn == [wall(NEW_YORK, 2025, 11, day, 3) for day in (1, 2, 3, 4)]
    assert autumn[1] == utc(2025, 11, 2, 8)  # 03:00 EST, 25 hours after the run before
    assert all(local(run, NEW_YORK).time() == time(3) for run in spring + autumn)


def test_a_minutely_job_after_a_month_down_runs_at_the_next_minute(conn: connection) -> None:
    schedule = Schedule(origin=utc(2025, 1, 1), micros=60 * SECOND, zone=NEW_YORK)
    after = utc(2025, 2, 1, 12, 34, 56, 500_000)  # 45,394 runs missed
    started = timer.perf_counter()
    run = sql_next_run(conn, schedule, after)
    elapsed = timer.perf_counter() - started
    print(f"_pq_next_run, 60 s grid, a month behind: {elapsed * 1000:.2f} ms")
    assert run == schedule.next_run(after) == utc(2025, 2, 1, 12, 35)
    # On a grid point: strictly after it.
    assert sql_next_run(conn, schedule, utc(2025, 2, 1, 12, 35)) == utc(2025, 2, 1, 12, 36)


def test_a_window_crossing_midnight_belongs_to_the_day_it_opened(conn: connection) -> None:
    # Hourly, 22:00-02:00 on Mondays (2025-06-02 and 2025-06-09 are Mondays).
    schedule = Schedule(
        origin=utc(2025, 6, 2),
        micros=3_600 * SECOND,
        between_start=time(22),
        between_end=time(2),
        weekdays=frozenset({0}),
    )
    expected = {
        utc(2025, 6, 3, 0, 30): utc(2025, 6, 3, 1),  # Tuesday 01:00 is in Monday's window
        utc(2025, 6, 3, 1, 30): utc(2025, 6, 3, 2),  # the window's end is included
        # Monday 01:00 is in Sunday's window: skipped; Monday's window opens at 22:00.
        utc(2025, 6, 2, 0, 30): utc(2025, 6, 2, 22),
        utc(2025, 6, 3, 2): utc(2025, 6, 9, 22),  # then next Monday's
    }
    for after, run in expected.items():
        assert sql_next_run(conn, schedule, after) == schedule.next_run(after) == run, after


def test_a_weekday_job_runs_once_on_mondays(conn: connection) -> None:
    # Daily at 11:50 Monday to Friday from Friday 2025-06-06: Saturday's and Sunday's grid
    # points are skipped, not moved to Monday 00:00.
    schedule = Schedule(
        origin=wall("Europe/Paris", 2025, 6, 6, 11, 50),
        days=1,
        weekdays=frozenset(range(5)),
        zone="Europe/Paris",
    )
    assert runs(conn, schedule, schedule.origin, 2) == [
        wall("Europe/Paris", 2025, 6, 9, 11, 50),
        wall("Europe/Paris", 2025, 6, 10, 11, 50),
    ]


def test_one_month_minus_a_day_from_the_first_is_each_month_end(conn: connection) -> None:
    schedule = Schedule(origin=utc(2025, 1, 1), months=1, days=-1)
    assert runs(conn, schedule, schedule.origin, 4) == [
        utc(2025, 1, 31),
        utc(2025, 2, 28),
        utc(2025, 3, 31),
        utc(2025, 4, 30),
    ]


def test_monthly_from_the_31st_clamps_without_drift(conn: connection) -> None:
    schedule = Schedule(origin=utc(2025, 1, 31, 9), months=1, zone="Europe/Paris")
    paris = [wall("Europe/Paris", 2025, month, day, 10) for month, day in ((2, 28), (3, 31))]
    paris.append(wall("Europe/Paris", 2025, 4, 30, 10))  # 10:00 local, now CEST
    assert runs(conn, schedule, schedule.origin, 3) == paris


def test_a_grid_point_in_a_dst_gap_is_the_end_of_the_gap(conn: connection) -> None:
    # Daily at 02:30 New York, window 02:30-04:00: on 2025-03-09 02:30 does not exist; the
    # run is at 03:00 EDT, in the window.
    schedule = Schedule(
        origin=wall(NEW_YORK, 2025, 3, 1, 2, 30),
        days=1,
        between_start=time(2, 30),
        between_end=time(4),
        zone=NEW_YORK,
    )
    assert runs(conn, schedule, wall(NEW_YORK, 2025, 3, 8, 2, 30), 2) == [
        utc(2025, 3, 9, 7),
        wall(NEW_YORK, 2025, 3, 10, 2, 30),
    ]


def test_a_grid_that_never_meets_the_window_runs_at_its_openings(conn: connection) -> None:
    # Daily at 11:00, window 09:00-10:00: no grid point is ever allowed; after 50 tries the
    # run is adjust(cand(k0)), the next opening.
    schedule = Schedule(origin=utc(2025, 6, 2, 11), days=1, between_start=time(9),
                        between_end=time(10))  # fmt: skip
    started = timer.perf_counter()
    run = sql_next_run(conn, schedule, utc(2025, 6, 2, 11))
    elapsed = timer.perf_counter() - started
    print(f"_pq_next_run, 50 jumps and the fallback: {elapsed * 1000:.2f} ms")
    assert run == schedule.next_run(utc(2025, 6, 2, 11)) == utc(2025, 6, 4, 9)
    assert runs(conn, schedule, utc(2025, 6, 2, 11), 3) == [
        utc(2025, 6, 4, 9),  # cand(k0) is 06-03 11:00: its next opening is 06-04 09:00
        utc(2025, 6, 5, 9),
        utc(2025, 6, 6, 9),
    ]


def test_the_fiftieth_grid_point_tried_is_the_last(conn: connection) -> None:
    # Every 23 h 59 min, window 09:00-10:00: grid point i is a minute earlier each day, and
    # rule 4 tries cand(1), cand(2), ... one a window. From 10:50, cand(50) is at 10:00, in
    # the window (its end included): the 50th try. From 10:51 it would be cand(51): the
    # tries run out and the run is adjust(cand(1)), cand(1) being at 10:50 on 06-03.
    step = (23 * 60 + 59) * 60 * SECOND
    for origin, run in (
        (utc(2025, 6, 2, 10, 50), utc(2025, 7, 22, 10)),
        (utc(2025, 6, 2, 10, 51), utc(2025, 6, 4, 9)),
    ):
        schedule = Schedule(origin=origin, micros=step, between_start=time(9), between_end=time(10))
        assert sql_next_run(conn, schedule, origin) == schedule.next_run(origin) == run


def test_nothing_allowed_is_null(conn: connection) -> None:
    schedule = Schedule(origin=utc(2025, 6, 2), days=1, weekdays=frozenset())
    assert schedule.next_run(utc(2025, 6, 2)) is None
    assert sql_next_run(conn, schedule, utc(2025, 6, 2)) is None


# Run 0 is the origin itself, whatever the interval; a pure time grid is o + k*u.
RUN_0_CASES = {
    "monthly + 2 h from Jan 1 00:00, after the origin": (
        Schedule(origin=utc(2000, 1, 1), months=1, micros=7_200 * SECOND),
        utc(2000, 1, 1),
        utc(2000, 2, 1, 2),  # not Jan 1 02:00
    ),
    "monthly - 1 day from Jan 1, just before the origin": (
        Schedule(origin=utc(2000, 1, 1), months=1, days=-1),
        utc(1999, 12, 31, 23, 59, 59, 999_999),
        utc(2000, 1, 1),  # not Jan 31
    ),
    "every 7 min from the second 01:30 of a fall-back night": (
        Schedule(origin=utc(2025, 11, 2, 6, 30), micros=420 * SECOND, zone=NEW_YORK),
        utc(2025, 11, 2, 6, 30),
        utc(2025, 11, 2, 6, 37),  # not 06:33 (Z(01:30) = 05:30Z + 9 * 7 min)
    ),
    "daily from the second 01:30 of a fall-back night, before it": (
        Schedule(origin=utc(2025, 11, 2, 6, 30), days=1, zone=NEW_YORK),
        utc(2025, 11, 2, 6),
        utc(2025, 11, 2, 6, 30),
    ),
}


@pytest.mark.parametrize("case", RUN_0_CASES.values(), ids=RUN_0_CASES.keys())
def test_run_0(conn: connection, case: tuple[Schedule, datetime, datetime]) -> None:
    schedule, after, run = case
    assert sql_next_run(conn, schedule, after) == schedule.next_run(after) == run


# The reference itself, on hand-worked examples (no SQL).


def test_reference_grid_of_days_keeps_the_wall_clock_and_adds_elapsed_time() -> None:
    # 1 day 1 hour from 2025-03-08 01:30 New York: cand(1) = Z(03-09 01:30) + 1 h = 03:30 EDT
    # (01:30 EST + 1 h elapsed = 02:30 EST = 03:30 EDT), cand(2) = Z(03-10 01:30) + 2 h.
    schedule = Schedule(
        origin=wall(NEW_YORK, 2025, 3, 8, 1, 30), days=1, micros=3_600 * SECOND, zone=NEW_YORK
    )
    assert schedule.candidate(1) == utc(2025, 3, 9, 7, 30)
    assert schedule.candidate(2) == wall(NEW_YORK, 2025, 3, 10, 3, 30)


def test_reference_month_steps_clamp_from_the_origin() -> None:
    schedule = Schedule(origin=utc(2024, 1, 31, 12), months=1, days=1, micros=-3_600 * SECOND)
    assert [schedule.candidate(k) for k in range(4)] == [
        utc(2024, 1, 31, 12),  # run 0: the origin
        utc(2024, 3, 1, 11),  # Feb 29 + 1 day - 1 hour
        utc(2024, 4, 1, 11),  # Mar 31 + 1 day - 1 hour
        utc(2024, 5, 1, 11),  # Apr 30 + 1 day - 1 hour
    ]


def test_reference_adjust() -> None:
    schedule = Schedule(
        origin=utc(2025, 6, 2),
        between_start=time(9),
        between_end=time(17),
        weekdays=frozenset({0, 2}),  # Monday, Wednesday
        micros=SECOND,
    )
    assert schedule.adjust(utc(2025, 6, 2, 12)) == utc(2025, 6, 2, 12)
    assert schedule.adjust(utc(2025, 6, 2, 17)) == utc(2025, 6, 2, 17)  # end included
    assert schedule.adjust(utc(2025, 6, 2, 17, 0, 1)) == utc(2025, 6, 4, 9)
    assert schedule.adjust(utc(2025, 6, 5, 8)) == utc(2025, 6, 9, 9)
    no_window = Schedule(origin=utc(2025, 6, 2), weekdays=frozenset({6}), days=1)
    assert no_window.adjust(utc(2025, 6, 2, 8)) == utc(2025, 6, 8)
    # Sunday (2025-06-08) 00:30 is allowed as it is.
    assert no_window.adjust(utc(2025, 6, 8, 0, 30)) == utc(2025, 6, 8, 0, 30)


def test_reference_skips_grid_points_outside_the_window() -> None:
    hourly, every_90_minutes = 3_600 * SECOND, 5_400 * SECOND
    nine_to_ten, nine_to_five = (time(9), time(10)), (time(9), time(17))
    # Every 90 minutes from 00:00, window 09:00-10:00 UTC: after the run at 09:00, grid
    # points 10:30 ... 07:30 are skipped; 06-03 09:00 is on the grid again (16 a day).
    origin, after = utc(2025, 6, 1), utc(2025, 6, 2, 9)
    run = next_run(after, origin, 0, 0, every_90_minutes, *nine_to_ten, None, "UTC")
    assert run == utc(2025, 6, 3, 9)
    # Every 90 minutes from 00:30: 09:30 is the day's only allowed grid point.
    origin = utc(2025, 6, 1, 0, 30)
    run = next_run(after, origin, 0, 0, every_90_minutes, *nine_to_ten, None, "UTC")
    assert run == utc(2025, 6, 2, 9, 30)
    # Hourly from 00:00, after 08:30: grid point 09:00.
    origin, after = utc(2025, 6, 2), utc(2025, 6, 2, 8, 30)
    run = next_run(after, origin, 0, 0, hourly, *nine_to_five, None, "UTC")
    assert run == utc(2025, 6, 2, 9)
    # Hourly from 00:20 with weekdays Monday only, after Monday 17:00: the next Monday 09:20.
    origin, after = utc(2025, 6, 2, 0, 20), utc(2025, 6, 2, 17)
    run = next_run(after, origin, 0, 0, hourly, *nine_to_five, [0], "UTC")
    assert run == utc(2025, 6, 9, 9, 20)
    # Far behind: a 1-second grid, five years on, lands on the next second.
    origin, after = utc(2020, 1, 1), utc(2025, 1, 1, 12, 0, 0, 1)
    run = next_run(after, origin, 0, 0, SECOND, None, None, None, "Europe/Paris")
    assert run == utc(2025, 1, 1, 12, 0, 1)
