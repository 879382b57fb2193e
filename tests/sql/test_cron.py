"""pq_cron_next and _pq_check_cron (sql/cron.sql): cron expressions read in a time zone.

Property tests compare pq_cron_next with tests/cron_reference.py (croniter on naive
wall-clock time, each tick made an instant by tests/zone_reference.zoned) on expressions
drawn from the grammar and instants around daylight-saving changes; explicit examples pin
the DST rule, the day-of-month/day-of-week rule, names, steps and every refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg2
import pytest
from croniter import CroniterBadDateError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg2.extensions import connection

from tests.cron_reference import cron_next
from tests.sql.helpers import fetch_value, raises_pq

Case = tuple[Any, ...]

NEW_YORK = "America/New_York"
ZONES = (
    NEW_YORK,
    "Europe/London",
    "Europe/Paris",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/Santiago",  # changes at midnight
    "Asia/Kolkata",  # +05:30, no DST since 1945
    "Pacific/Apia",  # skipped 2011-12-30 whole
    "UTC",
)
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@pytest.fixture(scope="module")
def cron_conn(dsn: str) -> Iterator[connection]:
    """One autocommit connection for the module (hypothesis runs many examples per test)."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    yield conn
    conn.close()


def cron_next_sql(
    conn: connection, expr: str | None, after: Any, zone: str | None = "UTC"
) -> datetime:
    """Call pq_cron_next and return the tick."""
    return fetch_value(conn, "SELECT pq_cron_next(%s, %s::timestamptz, %s)", (expr, after, zone))


def ticks(conn: connection, expr: str, after: str, zone: str = "UTC", count: int = 4) -> list[str]:
    """Return ``count`` consecutive ticks after ``after``, as ISO strings in ``zone``."""
    result: list[str] = []
    at: Any = after
    for _ in range(count):
        at = cron_next_sql(conn, expr, at, zone)
        result.append(at.astimezone(ZoneInfo(zone)).isoformat())
    return result


def check_each(cases: Iterable[Case], check: Callable[..., None]) -> None:
    """Run ``check(*case)`` for every case and report every case that fails, not the first.

    (Tables of cases in one test rather than parametrized: each test of this directory
    costs a truncation of the pq tables, far more than a case.)
    """
    failures = []
    for case in cases:
        try:
            check(*case)
        except (AssertionError, pytest.fail.Exception) as exc:
            failures.append(f"{case!r}: {exc}")
    assert not failures, f"{len(failures)} cases failed:\n" + "\n".join(failures)


# --- The reference, on random expressions, instants and zones ----------------------------

# (low, high, largest step, names) per field; a name's value is its index (months from 1).
FIELDS: tuple[tuple[int, int, int, tuple[str, ...]], ...] = (
    (0, 59, 60, ()),
    (0, 23, 24, ()),
    (1, 31, 31, ()),
    (1, 12, 12, MONTHS),
    (0, 7, 7, DAYS),
)
# Spellings of "every value" that are not '*': croniter calls such a day field unrestricted
# only when the other day field contains a '*'.
FULL = {2: ["1-31", "*/1", "1/1"], 4: ["0-6", "0-7", "*/1", "sun-sat", "1-7", "mon-sun"]}


# Strategies are built once: building them in every draw costs more than the queries.
BOOLEANS = st.booleans()
CASES_OF_NAMES = st.sampled_from([str.lower, str.upper, str.capitalize])
KINDS = st.sampled_from(["value", "value", "range", "range/n", "a/n", "*/n"])
SMALL_HOURS = st.sampled_from(["0-3", "1", "2", "0,2", "1-2/1", "23"])


@cache
def integers(low: int, high: int) -> st.SearchStrategy[int]:
    """st.integers(low, high), built once per bounds."""
    return st.integers(low, high)


def spell(draw: st.DrawFn, index: int, value: int, *, high_end: bool = False) -> str:
    """A value of field ``index``: its number, or (month, day-of-week) its name in any case."""
    names = FIELDS[index][3]
    if not names or not draw(BOOLEANS):
        return str(value)
    if index == 4 and value == 7 and not high_end:
        return str(value)  # 'sun' is 0 except at the end of a range
    name = names[value - 1] if index == 3 else names[value % 7]
    return draw(CASES_OF_NAMES)(name)


@st.composite
def items(draw: st.DrawFn, index: int) -> str:
    """One list item of field ``index``: a value, a range, or a step."""
    low, high, largest_step, _ = FIELDS[index]
    kind = draw(KINDS)
    step = draw(integers(1, largest_step))
    if kind == "*/n":
        return f"*/{step}"
    if kind == "value" or kind == "a/n":
        item = spell(draw, index, draw(integers(low, high)))
        return item if kind == "value" else f"{item}/{step}"
    # Ranges low to high, never equal bounds (croniter reads '5-5' as the whole field);
    # day-of-week 0-7, 0-sun and sun-sun are every day for croniter, Sunday here: none.
    start = draw(integers(low, high - 1))
    end = draw(integers(start + 1, high))
    text = spell(draw, index, start) + "-"
    text += str(end) if index == 4 and start == 0 else spell(draw, index, end, high_end=True)
    return text if kind == "range" else f"{text}/{step}"


LISTS = [st.lists(items(index), min_size=1, max_size=3) for index in range(5)]
FULL_SPELLINGS = {index: st.sampled_from(spellings) for index, spellings in FULL.items()}


@st.composite
def fields(draw: st.DrawFn, index: int) -> str:
    """Field ``index``: '*', a list of one to three items, or a spelling of every value."""
    choice = draw(integers(0, 9))
    if choice < 3:
        return "*"
    if choice == 3 and index in FULL:
        return draw(FULL_SPELLINGS[index])
    return ",".join(draw(LISTS[index]))


FIELD_STRATEGIES = [fields(index) for index in range(5)]
HOURS = st.one_of(FIELD_STRATEGIES[1], SMALL_HOURS)


@st.composite
def expressions(draw: st.DrawFn) -> str:
    """A five-field cron expression; the hours lean to the small hours, when DST changes."""
    minute, hour = draw(FIELD_STRATEGIES[0]), draw(HOURS)
    day, month, weekday = (draw(FIELD_STRATEGIES[index]) for index in (2, 3, 4))
    return " ".join([minute, hour, day, month, weekday])


ZONE_NAMES = st.sampled_from(ZONES)
# Seconds from a DST change: within 3 hours, often a minute either side or on it.
NEAR_A_CHANGE = st.one_of(st.integers(-3 * 3600, 3 * 3600), st.sampled_from([-60, 0, 60]))
EARLIEST = int(datetime(1970, 1, 1, tzinfo=UTC).timestamp())
LATEST = int(datetime(2100, 12, 31, tzinfo=UTC).timestamp())


@cache
def transitions(zone: str, year: int) -> tuple[datetime, ...]:
    """The instants (UTC, to the second) at which ``zone``'s UTC offset changed in ``year``."""
    tz = ZoneInfo(zone)

    def offset(instant: datetime) -> timedelta | None:
        return instant.astimezone(tz).utcoffset()

    found = []
    day = datetime(year, 1, 1, tzinfo=UTC)
    while day.year == year:
        following = day + timedelta(days=1)
        if offset(day) != offset(following):
            low, high = day, following
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if offset(middle) == offset(low):
                    low = middle
                else:
                    high = middle
            found.append(high.replace(microsecond=0))
        day = following
    return tuple(found)


@st.composite
def instants_in_zones(draw: st.DrawFn) -> tuple[datetime, str]:
    """A zone and an instant in 1970-2100: anywhere, or within 3 hours of a DST change."""
    zone = draw(ZONE_NAMES)
    anywhere = datetime.fromtimestamp(draw(integers(EARLIEST, LATEST)), UTC)
    changes = transitions(zone, anywhere.year)
    if not changes or draw(BOOLEANS):
        return anywhere, zone
    change = changes[draw(integers(0, len(changes) - 1))]
    return change + timedelta(seconds=draw(NEAR_A_CHANGE)), zone


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(expr=expressions(), case=instants_in_zones())
def test_pq_cron_next_agrees_with_the_croniter_reference(
    cron_conn: connection, expr: str, case: tuple[datetime, str]
) -> None:
    after, zone = case
    try:
        expected = cron_next(expr, after, zone)
    except CroniterBadDateError:
        with raises_pq("PQ001", r"^pq_cron_next: cron expression '.*' never fires"):
            cron_next_sql(cron_conn, expr, after, zone)
        return
    assert cron_next_sql(cron_conn, expr, after, zone) == expected


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    expr=st.sampled_from(
        ["* * * * *", "*/7 * * * *", "0 * * * *", "*/20 0-3 * * *", "30 1,2 * * *", "0 0 * * *"]
    ),
    case=instants_in_zones(),
)
def test_dense_expressions_around_dst_changes_agree_with_the_reference(
    cron_conn: connection, expr: str, case: tuple[datetime, str]
) -> None:
    after, zone = case
    assert cron_next_sql(cron_conn, expr, after, zone) == cron_next(expr, after, zone)


# --- Daylight-saving changes -------------------------------------------------------------


def test_a_tick_in_the_skipped_hour_fires_once_at_the_end_of_the_gap(cron_conn: connection) -> None:
    # New York, 2025-03-09: 02:00 EST -> 03:00 EDT.
    assert ticks(cron_conn, "30 2 * * *", "2025-03-08 12:00-05", NEW_YORK, 3) == [
        "2025-03-09T03:00:00-04:00",
        "2025-03-10T02:30:00-04:00",
        "2025-03-11T02:30:00-04:00",
    ]


def test_several_skipped_ticks_fire_once_together(cron_conn: connection) -> None:
    assert ticks(cron_conn, "*/15 2 * * *", "2025-03-08 12:00-05", NEW_YORK, 3) == [
        "2025-03-09T03:00:00-04:00",
        "2025-03-10T02:00:00-04:00",
        "2025-03-10T02:15:00-04:00",
    ]
    # Ticks on either side of the gap are untouched.
    assert ticks(cron_conn, "*/30 * * * *", "2025-03-09 01:00-05", NEW_YORK, 3) == [
        "2025-03-09T01:30:00-05:00",
        "2025-03-09T03:00:00-04:00",
        "2025-03-09T03:30:00-04:00",
    ]


def test_a_tick_in_the_repeated_hour_fires_once_the_first_time(cron_conn: connection) -> None:
    # New York, 2025-11-02: 02:00 EDT -> 01:00 EST; 01:00-02:00 is lived twice.
    assert ticks(cron_conn, "30 1 * * *", "2025-11-01 12:00-04", NEW_YORK, 2) == [
        "2025-11-02T01:30:00-04:00",
        "2025-11-03T01:30:00-05:00",
    ]


def test_every_20_minutes_in_the_repeated_hour_fires_on_its_first_pass_only(
    cron_conn: connection,
) -> None:
    assert ticks(cron_conn, "*/20 1 * * *", "2025-11-02 00:00-04", NEW_YORK, 4) == [
        "2025-11-02T01:00:00-04:00",
        "2025-11-02T01:20:00-04:00",
        "2025-11-02T01:40:00-04:00",
        "2025-11-03T01:00:00-05:00",
    ]


AROUND_THE_REPEATED_HOUR: list[Case] = [
    # after is in the second pass: the rest of that pass is ticks already fired.
    ("*/20 1 * * *", "2025-11-02 01:10-05", "2025-11-03T01:00:00-05:00"),
    ("* * * * *", "2025-11-02 01:30-05", "2025-11-02T02:00:00-05:00"),
    ("0 * * * *", "2025-11-02 01:00-05", "2025-11-02T02:00:00-05:00"),
    # The last minute of the first pass: the whole second pass is skipped.
    ("* * * * *", "2025-11-02 01:59:30-04", "2025-11-02T02:00:00-05:00"),
    ("0 * * * *", "2025-11-02 00:30-04", "2025-11-02T01:00:00-04:00"),
    ("0 * * * *", "2025-11-02 01:00-04", "2025-11-02T02:00:00-05:00"),
]


def test_after_in_or_around_the_repeated_hour(cron_conn: connection) -> None:
    def check(expr: str, after: str, expected: str) -> None:
        assert ticks(cron_conn, expr, after, NEW_YORK, 1) == [expected]

    check_each(AROUND_THE_REPEATED_HOUR, check)


def test_lord_howe_half_hour_changes(cron_conn: connection) -> None:
    zone = "Australia/Lord_Howe"
    # 2025-04-06 02:00 +11 -> 01:30 +10:30: 01:30-02:00 is lived twice.
    assert ticks(cron_conn, "*/10 1 * * *", "2025-04-06 01:00+11", zone, 4) == [
        "2025-04-06T01:10:00+11:00",
        "2025-04-06T01:20:00+11:00",
        "2025-04-06T01:30:00+11:00",
        "2025-04-06T01:40:00+11:00",
    ]
    assert ticks(cron_conn, "*/10 1 * * *", "2025-04-06 01:50+11", zone, 1) == [
        "2025-04-07T01:00:00+10:30"
    ]
    # 2025-10-05 02:00 +10:30 -> 02:30 +11: 02:00-02:30 is skipped.
    assert ticks(cron_conn, "15 2 * * *", "2025-10-04 12:00+10:30", zone, 2) == [
        "2025-10-05T02:30:00+11:00",
        "2025-10-06T02:15:00+11:00",
    ]


def test_a_skipped_day_fires_once_at_its_end(cron_conn: connection) -> None:
    # Samoa skipped 2011-12-30 whole (-10:00 -> +14:00 at midnight).
    assert ticks(cron_conn, "0 12 * * *", "2011-12-29 13:00-10", "Pacific/Apia", 2) == [
        "2011-12-31T00:00:00+14:00",
        "2011-12-31T12:00:00+14:00",
    ]


def test_a_skipped_midnight(cron_conn: connection) -> None:
    # Santiago, 2025-09-07: 00:00 -04 -> 01:00 -03.
    assert ticks(cron_conn, "0 0 * * *", "2025-09-06 12:00-04", "America/Santiago", 2) == [
        "2025-09-07T01:00:00-03:00",
        "2025-09-08T00:00:00-03:00",
    ]


def test_fields_are_wall_clock_time_in_the_zone(cron_conn: connection) -> None:
    assert ticks(cron_conn, "0 9 * * *", "2025-06-01 00:00Z", "Asia/Kolkata", 1) == [
        "2025-06-01T09:00:00+05:30"
    ]
    assert ticks(cron_conn, "0 9 * * *", "2025-06-01 00:00Z", "Europe/Paris", 1) == [
        "2025-06-01T09:00:00+02:00"
    ]
    # Default zone: UTC.
    assert fetch_value(
        cron_conn, "SELECT pq_cron_next('0 9 * * *', '2025-06-01 10:00Z')"
    ) == datetime(2025, 6, 2, 9, tzinfo=UTC)


# --- Fields ------------------------------------------------------------------------------


FIELD_CASES: list[Case] = [
    # Strictly after; seconds of after do not matter.
    ("* * * * *", "2025-01-01 10:00:00Z", ["10:01", "10:02"]),
    ("* * * * *", "2025-01-01 10:00:30Z", ["10:01", "10:02"]),
    ("0 10 * * *", "2025-01-01 10:00Z", ["2025-01-02 10:00"]),
    # Steps: */n from the field's start, a-b/n from a, a/n from a to the field's end.
    ("*/15 * * * *", "2025-01-01 10:00Z", ["10:15", "10:30", "10:45", "11:00"]),
    ("10-50/15 * * * *", "2025-01-01 10:00Z", ["10:10", "10:25", "10:40", "11:10"]),
    ("50/4 * * * *", "2025-01-01 10:00Z", ["10:50", "10:54", "10:58", "11:50"]),
    ("0 22/1 * * *", "2025-01-01 00:00Z", ["22:00", "23:00", "2025-01-02 22:00"]),
    ("0 0 1 */4 *", "2025-01-01 00:00Z", ["2025-05-01", "2025-09-01", "2026-01-01"]),
    # Lists of values, ranges and steps.
    ("5,7-8,*/30 * * * *", "2025-01-01 10:00Z", ["10:05", "10:07", "10:08", "10:30"]),
    # Month names, any case, in values, ranges and steps.
    ("0 0 1 JAN,Jun-jul *", "2025-01-01 00:00Z", ["2025-06-01", "2025-07-01", "2026-01-01"]),
    ("0 0 1 feb/5 *", "2025-01-01 00:00Z", ["2025-02-01", "2025-07-01", "2025-12-01"]),
    # Day names; 0 and 7 are Sunday; a range may end on Sunday (7 or sun).
    ("0 0 * * Sun", "2025-01-01 00:00Z", ["2025-01-05", "2025-01-12"]),
    ("0 0 * * 7", "2025-01-01 00:00Z", ["2025-01-05", "2025-01-12"]),
    ("0 0 * * 0", "2025-01-01 00:00Z", ["2025-01-05", "2025-01-12"]),
    ("0 0 * * fri-sun", "2025-01-01 00:00Z", ["2025-01-03", "2025-01-04", "2025-01-05"]),
    ("0 0 * * 5-7", "2025-01-01 00:00Z", ["2025-01-03", "2025-01-04", "2025-01-05"]),
    ("0 0 * * MON-wed/2", "2025-01-01 00:00Z", ["2025-01-06", "2025-01-08", "2025-01-13"]),
    # a/n on day-of-week runs to Saturday, 7/n as 0/n (croniter's reading).
    ("0 0 * * 1/2", "2025-01-01 00:00Z", ["2025-01-03", "2025-01-06", "2025-01-08"]),
    ("0 0 * * 7/3", "2025-01-01 00:00Z", ["2025-01-04", "2025-01-05", "2025-01-08"]),
    # Whitespace: any run of spaces, tabs and newlines between fields.
    ("  0\t3   * *\n*  ", "2025-01-01 00:00Z", ["03:00", "2025-01-02 03:00"]),
]


def test_fields(cron_conn: connection) -> None:
    def check(expr: str, after: str, expected: list[str]) -> None:
        got = ticks(cron_conn, expr, after, "UTC", len(expected))
        assert [short(tick, want) for tick, want in zip(got, expected, strict=True)] == expected

    check_each(FIELD_CASES, check)


def short(tick: str, like: str) -> str:
    """Format an ISO tick as ``like`` is written: 'HH:MM', 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM'."""
    at = datetime.fromisoformat(tick)
    if len(like) == 5:
        return at.strftime("%H:%M")
    if len(like) == 10:
        assert at.time() == datetime.min.time(), tick
        return at.strftime("%Y-%m-%d")
    return at.strftime("%Y-%m-%d %H:%M")


DAY_CASES: list[Case] = [
    # Both day fields restricted: a day matches if either does (the 13th, and Fridays).
    ("0 0 13 * fri", ["01-03", "01-10", "01-13", "01-17", "01-24", "01-31", "02-07"]),
    # One unrestricted ('*'): the other alone decides.
    ("0 0 13 * *", ["01-13", "02-13", "03-13"]),
    ("0 0 * * fri", ["01-03", "01-10", "01-17"]),
    # '*/2' in day-of-month is restricted (croniter): odd days, or Mondays.
    ("0 0 */2 * mon", ["01-03", "01-05", "01-06", "01-07", "01-09", "01-11", "01-13"]),
    ("0 0 */2 * *", ["01-03", "01-05", "01-07"]),
    # Every day of the week, spelled without '*', against a day field with a '*':
    # unrestricted, so the odd days alone.
    ("0 0 */2 * 0-6", ["01-03", "01-05", "01-07"]),
    ("0 0 */2 * sun-sat", ["01-03", "01-05", "01-07"]),
    # ... and against one without: restricted, so every day (odd days or any weekday).
    ("0 0 1-15 * 0-6", ["01-02", "01-03", "01-04"]),
    # Likewise every day of the month, against '*/2' (day-of-week): even weekdays only.
    ("0 0 1-31 * */2", ["01-02", "01-04", "01-05", "01-07", "01-09"]),
    ("0 0 1-31 * mon", ["01-02", "01-03", "01-04"]),
    # Month restricts both: the 1st of February or Mondays in February.
    ("0 0 1 feb mon", ["02-01", "02-03", "02-10", "02-17", "02-24", "2026-02-01"]),
]


def test_day_of_month_and_day_of_week(cron_conn: connection) -> None:
    def check(expr: str, days: list[str]) -> None:
        got = ticks(cron_conn, expr, "2025-01-01 00:00Z", "UTC", len(days))
        want = [day if len(day) == 10 else f"2025-{day}" for day in days]
        assert [datetime.fromisoformat(t).strftime("%Y-%m-%d") for t in got] == want

    check_each(DAY_CASES, check)


def test_february_29(cron_conn: connection) -> None:
    assert ticks(cron_conn, "0 0 29 2 *", "2025-01-01 00:00Z", "UTC", 2) == [
        "2028-02-29T00:00:00+00:00",
        "2032-02-29T00:00:00+00:00",
    ]
    # 2100 is no leap year: eight years apart, the longest wait there is.
    assert ticks(cron_conn, "0 0 29 2 *", "2097-01-01 00:00Z", "UTC", 1) == [
        "2104-02-29T00:00:00+00:00"
    ]
    # Feb 29 or Mondays (in February).
    assert ticks(cron_conn, "0 0 29 2 1", "2096-02-27 00:00Z", "UTC", 3) == [
        "2096-02-29T00:00:00+00:00",
        "2097-02-04T00:00:00+00:00",
        "2097-02-11T00:00:00+00:00",
    ]
    assert ticks(cron_conn, "0 12 29 feb *", "2024-02-29 11:59Z", "UTC", 1) == [
        "2024-02-29T12:00:00+00:00"
    ]


ALIASES: list[Case] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
    ("@DAILY", "0 0 * * *"),
]


def test_aliases(cron_conn: connection) -> None:
    def check(alias: str, expr: str) -> None:
        for after in ("2025-01-01 00:00Z", "2025-06-15 13:45Z", "2025-12-31 23:59:59Z"):
            assert cron_next_sql(cron_conn, alias, after) == cron_next_sql(cron_conn, expr, after)

    check_each(ALIASES, check)


def test_check_cron_accepts_a_good_expression(cron_conn: connection) -> None:
    fetch_value(cron_conn, "SELECT _pq_check_cron('pq_schedule_cron', '*/15 9-17 * * mon-fri')")


# --- Refusals ----------------------------------------------------------------------------

FIELD_SYNTAX = "is not a value, range or step"


REFUSALS: list[Case] = [
    # Out of range, with the field's number, name and text.
    ("0 25 * * *", r"cron field 2 \(hour\) '25' is out of range 0-23"),
    ("0 1,25 * * *", r"cron field 2 \(hour\) '1,25': '25' is out of range 0-23"),
    ("0 1-25 * * *", r"cron field 2 \(hour\) '1-25': '25' is out of range 0-23"),
    ("60 * * * *", r"cron field 1 \(minute\) '60' is out of range 0-59"),
    ("0 0 0 * *", r"cron field 3 \(day-of-month\) '0' is out of range 1-31"),
    ("0 0 32 * *", r"cron field 3 \(day-of-month\) '32' is out of range 1-31"),
    ("0 0 * 13 *", r"cron field 4 \(month\) '13' is out of range 1-12"),
    ("0 0 * 0 *", r"cron field 4 \(month\) '0' is out of range 1-12"),
    ("0 0 * * 8", r"cron field 5 \(day-of-week\) '8' is out of range 0-7"),
    ("99999999999 * * * *", r"cron field 1 \(minute\) '99999999999' is out of range 0-59"),
    # Steps.
    ("*/0 * * * *", r"cron field 1 \(minute\) '\*/0' has step 0; its steps go from 1 to 60"),
    ("0 */25 * * *", r"cron field 2 \(hour\) '\*/25' has step 25; its steps go from 1 to 24"),
    ("0 0 * * */8", r"cron field 5 \(day-of-week\) '\*/8' has step 8; its steps go from 1 to 7"),
    ("0 0 * * 1,1-5/0", r"cron field 5 \(day-of-week\) '1,1-5/0': '1-5/0' has step 0"),
    # Reversed ranges.
    ("5-2 * * * *", r"cron field 1 \(minute\) '5-2' is a reversed range: '5' comes after '2'"),
    ("0 0 * * fri-mon", r"cron field 5 \(day-of-week\) 'fri-mon' is a reversed range"),
    ("0 0 * dec-jan *", r"cron field 4 \(month\) 'dec-jan' is a reversed range"),
    # Unknown names.
    ("0 0 * foo *", r"cron field 4 \(month\) 'foo' is not a number or a month name \(jan-dec\)"),
    ("0 0 * * monday", r"cron field 5 \(day-of-week\) 'monday' is not a number or a day name"),
    ("0 0 * * mon-xyz", r"cron field 5 \(day-of-week\) 'mon-xyz': 'xyz' is not a number or a"),
    ("0 jan * * *", r"cron field 2 \(hour\) 'jan' is not a number$"),
    ("0 0 * * 5#2", r"cron field 5 \(day-of-week\) '5#2' is not a number or a day name"),
    ("0 0 L * *", r"cron field 3 \(day-of-month\) 'L' is not a number$"),
    # Syntax.
    ("1-2-3 * * * *", rf"cron field 1 \(minute\) '1-2-3' {FIELD_SYNTAX}"),
    ("*/x * * * *", rf"cron field 1 \(minute\) '\*/x' {FIELD_SYNTAX}"),
    ("*-5 * * * *", rf"cron field 1 \(minute\) '\*-5' {FIELD_SYNTAX}"),
    ("1/2/3 * * * *", rf"cron field 1 \(minute\) '1/2/3' {FIELD_SYNTAX}"),
    ("-5 * * * *", rf"cron field 1 \(minute\) '-5' {FIELD_SYNTAX}"),
    ("0 0 1, * *", r"cron field 3 \(day-of-month\) '1,' has an empty list item"),
    ("*,5 * * * *", r"cron field 1 \(minute\) '\*,5' has \* in a list; \* stands alone"),
    # Field count.
    (
        "0 0 * *",
        r"cron expression '0 0 \* \*' has 4 fields; it needs 5: minute hour day-of-month"
        r" month day-of-week$",
    ),
    ("0 0 1 1 * 2025", r"cron expression '0 0 1 1 \* 2025' has 6 fields; it needs 5"),
    ("@reboot", r"cron alias '@reboot' is not supported"),
    # Nothing at all.
    ("", r"cron expression must be five fields, got ''$"),
    (" \t ", r"cron expression must be five fields, got ' \t '$"),
    (None, r"cron expression must be five fields, got NULL$"),
    # Never fires.
    ("0 0 30 2 *", r"cron expression '0 0 30 2 \*' never fires \(no month has that day\)"),
    ("0 0 31 4,6,9,11 *", r"cron expression '0 0 31 4,6,9,11 \*' never fires"),
    ("0 0 30,31 feb *", r"cron expression '0 0 30,31 feb \*' never fires"),
]


def test_check_cron_and_pq_cron_next_refuse_bad_expressions(cron_conn: connection) -> None:
    def check(expr: str | None, message: str) -> None:
        with raises_pq("PQ001", rf"^pq_schedule_cron: {message}") as info:
            fetch_value(cron_conn, "SELECT _pq_check_cron('pq_schedule_cron', %s)", (expr,))
        assert info.value.diag.message_hint, "every refusal says how to fix it"
        with raises_pq("PQ001", rf"^pq_cron_next: {message}"):
            cron_next_sql(cron_conn, expr, "2025-01-01 00:00Z")

    check_each(REFUSALS, check)


def test_expressions_that_fire_are_not_refused_as_never_firing(cron_conn: connection) -> None:
    def check(expr: str) -> None:
        fetch_value(cron_conn, "SELECT _pq_check_cron('pq_schedule_cron', %s)", (expr,))
        tick = cron_next_sql(cron_conn, expr, "2025-01-01 00:00Z")
        assert tick == cron_next(expr, datetime(2025, 1, 1, tzinfo=UTC))

    cases = ["0 0 30 2 1", "0 0 31 4 fri", "0 0 30 1,2 *", "0 0 29 2 *", "0 0 31 * *"]
    check_each([(expr,) for expr in cases], check)


def test_pq_cron_next_refuses_an_unknown_time_zone_or_an_after_that_is_no_time(
    cron_conn: connection,
) -> None:
    with raises_pq("PQ001", r"^pq_cron_next: time zone 'Mars/Olympus_Mons' is not known"):
        cron_next_sql(cron_conn, "* * * * *", "2025-01-01 00:00Z", "Mars/Olympus_Mons")
    for zone in ("", None):
        with raises_pq("PQ001", r"^pq_cron_next: time_zone must be a time zone name"):
            cron_next_sql(cron_conn, "* * * * *", "2025-01-01 00:00Z", zone)
    for after in (None, "infinity", "-infinity"):
        with raises_pq(
            "PQ001", rf"^pq_cron_next: after must be a finite time, got {after or 'NULL'}$"
        ):
            cron_next_sql(cron_conn, "* * * * *", after)


def test_pq_cron_next_is_stable_and_builds_no_sql(cron_conn: connection) -> None:
    volatility = fetch_value(
        cron_conn,
        "SELECT provolatile FROM pg_proc WHERE oid = 'pq_cron_next(text, timestamptz, text)'"
        "::regprocedure",
    )
    assert volatility == "s"
    source = (Path(__file__).resolve().parents[2] / "sql" / "cron.sql").read_text()
    assert "EXECUTE" not in source


def test_transitions_helper_finds_new_yorks_2025_changes() -> None:
    # The property tests lean on this helper to aim at DST changes.
    assert transitions(NEW_YORK, 2025) == (
        datetime(2025, 3, 9, 7, tzinfo=UTC),
        datetime(2025, 11, 2, 6, tzinfo=UTC),
    )
    assert transitions("Asia/Kolkata", 2025) == ()
    assert datetime(2011, 12, 30, 10, tzinfo=UTC) in transitions("Pacific/Apia", 2011)
