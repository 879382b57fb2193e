"""pq_schedule, pq_schedule_cron, pq_unschedule and pq_schedules (sql/schedule.sql).

Repeating jobs are claimed with pq_dequeue as a worker would: the claim's trigger inserts
the next run. Runs are made due without waiting by moving the pending row back in time
(:func:`time_travel` shifts its due time and its whole schedule, as if the clock had moved
on to its due time). The rules of the next run itself are tested in test_next_run.py; cron
expressions in test_cron.py (the cron tests here need sql/cron.sql's pq_cron_next).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg2
import psycopg2.errors
import pytest
from psycopg2 import sql
from psycopg2.extensions import connection

from tests.sql.helpers import (
    CHANNEL,
    FUNC,
    Role,
    dequeue,
    execute,
    fetch_all,
    fetch_value,
    get_job,
    listen,
    notifications,
    raises_pq,
)

# The names this module claims jobs with, registered before each test (conftest.py).
CLAIMING_WORKERS = ("w1", *(f"racer{i}" for i in range(6)))

# Argument types of pq_schedule, for calls with named arguments.
SCHEDULE_TYPES = {
    "args": "jsonb",
    "kwargs": "jsonb",
    "scheduled_for": "timestamptz",
    "repeat": "integer",
    "repeat_until": "timestamptz",
    "repeat_interval": "interval",
    "between_start": "time",
    "between_end": "time",
    "weekdays": "integer[]",
    "time_zone": "text",
    "timeout": "integer",
    "result_ttl": "integer",
    "description": "text",
    "instance": "bytea",
    "name": "text",
    "priority": "integer",
    "max_retries": "integer",
    "retry_intervals": "integer[]",
}
CRON_TYPES = {
    "args": "jsonb",
    "kwargs": "jsonb",
    "queue_name": "text",
    "time_zone": "text",
    "timeout": "integer",
    "result_ttl": "integer",
    "description": "text",
    "priority": "integer",
    "max_retries": "integer",
    "retry_intervals": "integer[]",
}
SCHEDULE_SIGNATURE = (
    "pq_schedule(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval,"
    " time, time, integer[], text, integer, integer, text, bytea, text, integer, integer,"
    " integer[])"
)
CRON_SIGNATURE = (
    "pq_schedule_cron(text, text, text, jsonb, jsonb, text, text, integer, integer, text,"
    " integer, integer, integer[])"
)
UNSCHEDULE_SIGNATURE = "pq_unschedule(text)"
INSUFFICIENT_PRIVILEGE = "42501"
UNIQUE_VIOLATION = "23505"
MONDAY = date(2030, 1, 7)
assert MONDAY.weekday() == 0


def day(n: int) -> date:
    """The day ``n`` days after MONDAY (a Monday)."""
    return MONDAY + timedelta(days=n)


def _named(options: dict[str, Any], types: dict[str, str]) -> tuple[str, list[Any]]:
    """Named-notation SQL arguments (``name => %s::type``) for ``options``, and their values."""
    parts, values = [], []
    for name, value in options.items():
        parts.append(f", {name} => %s::{types[name]}")
        values.append(json.dumps(value) if types[name] == "jsonb" else value)
    return "".join(parts), values


def schedule(conn: connection, queue: str = "default", func: str = FUNC, **options: Any) -> int:
    """Call ``pq_schedule(queue, func, option => value, ...)`` and return the job id."""
    named, values = _named(options, SCHEDULE_TYPES)
    return fetch_value(conn, f"SELECT pq_schedule(%s, %s{named})", (queue, func, *values))


def schedule_cron(conn: connection, name: str, expr: str, func: str = FUNC, **options: Any) -> int:
    """Call ``pq_schedule_cron(name, expr, func, option => value, ...)``; return the job id."""
    named, values = _named(options, CRON_TYPES)
    return fetch_value(
        conn, f"SELECT pq_schedule_cron(%s, %s, %s{named})", (name, expr, func, *values)
    )


def job_count(conn: connection) -> int:
    return fetch_value(conn, "SELECT count(*) FROM pq_job")


def pending(conn: connection) -> list[dict[str, Any]]:
    """The 'scheduled' rows, in id order."""
    return [
        get_job(conn, row[0])
        for row in fetch_all(conn, "SELECT id FROM pq_job WHERE status = 'scheduled' ORDER BY id")
    ]


def the_pending(conn: connection) -> dict[str, Any]:
    """The one 'scheduled' row (fails if there are more or none)."""
    rows = pending(conn)
    assert len(rows) == 1, f"expected one pending run, got {rows!r}"
    return rows[0]


def time_travel(conn: connection, job_id: int) -> None:
    """Make job ``job_id`` due now, as if the clock had moved on to its due time: its due
    time, origin and end move back together, so its schedule keeps its shape."""
    execute(
        conn,
        "UPDATE pq_job j SET scheduled_for = j.scheduled_for - s.d,"
        " repeat_from = j.repeat_from - s.d, repeat_until = j.repeat_until - s.d"
        " FROM (SELECT greatest(scheduled_for - now() + interval '1 millisecond',"
        "                       interval '0') AS d FROM pq_job WHERE id = %s) AS s"
        " WHERE j.id = %s",
        (job_id, job_id),
    )


def claim(conn: connection, worker: str = "w1") -> dict[str, Any] | None:
    return dequeue(conn, ["default"], worker)


def claim_all(conn: connection, limit: int = 50) -> list[dict[str, Any]]:
    """Claim runs until none is pending, making each due first; return the claimed rows."""
    claimed = []
    for _ in range(limit):
        rows = pending(conn)
        if not rows:
            return claimed
        assert len(rows) == 1, f"a schedule forked: {rows!r}"
        time_travel(conn, rows[0]["id"])
        run = claim(conn)
        assert run is not None and run["id"] == rows[0]["id"]
        claimed.append(run)
    raise AssertionError(f"still pending after {limit} claims")


def offset(job: dict[str, Any]) -> float:
    """Seconds from the schedule's origin to this run (unchanged by time_travel)."""
    return (job["scheduled_for"] - job["repeat_from"]).total_seconds()


def at(day: date, clock: str, zone: str = "UTC") -> str:
    """A timestamptz literal: ``day`` at wall-clock ``clock`` in ``zone``."""
    return f"{day.isoformat()} {clock} {zone}"


def utc(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


# pq_schedule: what it stores


def test_schedule_stores_a_scheduled_row_with_its_options(raw_conn: connection) -> None:
    job_id = schedule(
        raw_conn,
        "reports",
        args=["Bob"],
        kwargs={"x": 1},
        scheduled_for=at(MONDAY, "09:00"),
        repeat=5,
        repeat_interval="1 day",
        between_start="02:00",
        between_end="18:30",
        weekdays=[4, 0, 2, 0],
        time_zone="Europe/Paris",
        timeout=30,
        result_ttl=60,
        description="daily report",
    )
    job = get_job(raw_conn, job_id)
    assert job["status"] == "scheduled"
    assert job["queue"] == job["origin"] == "reports"
    assert job["func"] == FUNC
    assert job["args"] == ["Bob"]
    assert job["kwargs"] == {"x": 1}
    assert job["scheduled_for"] == utc(MONDAY, 9)
    assert job["repeat_from"] == utc(MONDAY, 9)
    assert job["repeat"] == 5
    assert job["repeat_until"] is None
    assert job["repeat_interval"] == timedelta(days=1)
    assert fetch_value(raw_conn, "SELECT repeat_interval::text FROM pq_job") == "1 day"
    assert job["between_start"] == time(2, 0)
    assert job["between_end"] == time(18, 30)
    assert job["weekdays"] == [0, 2, 4]  # sorted, without duplicates
    assert job["time_zone"] == "Europe/Paris"
    assert job["timeout"] == 30
    assert job["result_ttl"] == 60
    assert job["description"] == "daily report"
    assert job["cron"] is None
    assert job["schedule_name"] is None
    assert fetch_value(raw_conn, "SELECT serial FROM pq_queue WHERE name = 'reports'") is False


def test_schedule_defaults_run_once_now_in_the_sessions_time_zone(raw_conn: connection) -> None:
    execute(raw_conn, "SET timezone = 'America/New_York'")
    job_id = schedule(raw_conn)
    job = get_job(raw_conn, job_id)
    assert job["status"] == "scheduled"
    assert job["time_zone"] == "America/New_York"
    assert job["scheduled_for"] == job["created_at"]  # now(), same transaction
    assert job["repeat"] == 0
    assert job["repeat_interval"] is None
    assert job["repeat_from"] is None
    assert job["args"] == []
    assert job["kwargs"] == {}
    assert job["weekdays"] is None
    assert job["between_start"] is None and job["between_end"] is None


def test_an_explicit_time_zone_wins_over_the_session(raw_conn: connection) -> None:
    execute(raw_conn, "SET timezone = 'Asia/Tokyo'")
    job_id = schedule(raw_conn, time_zone="Europe/Paris")
    assert get_job(raw_conn, job_id)["time_zone"] == "Europe/Paris"


def test_a_due_schedule_is_claimed_at_once(raw_conn: connection) -> None:
    job_id = schedule(raw_conn)
    run = claim(raw_conn)
    assert run is not None and run["id"] == job_id
    assert run["status"] == "started"
    assert pending(raw_conn) == []


def test_scheduling_notifies_the_queue(raw_conn: connection, connect: Callable) -> None:
    listener = connect()
    listen(listener)
    schedule(raw_conn, "reports", scheduled_for=at(MONDAY, "09:00"))
    assert notifications(listener, count=1) == [(CHANNEL, "reports")]


def test_repeat_until_without_a_count_repeats_until_then(raw_conn: connection) -> None:
    job_id = schedule(
        raw_conn,
        scheduled_for=at(MONDAY, "09:00"),
        repeat_until=at(day(3), "09:00"),
        repeat_interval="1 day",
    )
    job = get_job(raw_conn, job_id)
    assert job["repeat"] == -1
    assert job["repeat_until"] == utc(day(3), 9)


@pytest.mark.parametrize(
    "options",
    [
        {"weekdays": [0, 1, 2, 3, 4]},
        {"between_start": "02:00", "between_end": "18:30"},
        {"weekdays": [5], "repeat_until": at(day(60), "00:00")},
    ],
)
def test_a_repeating_job_with_a_window_or_weekdays_and_no_interval_repeats_daily(
    raw_conn: connection, options: dict[str, Any]
) -> None:
    """The seed's ``schedule_call(dt, f, repeat=-1, weekdays=(MO, TU, WE, TH, FR))``."""
    job_id = schedule(raw_conn, scheduled_for=at(MONDAY, "09:00"), repeat=-1, **options)
    assert fetch_value(raw_conn, "SELECT repeat_interval::text FROM pq_job WHERE id = %s",
                       (job_id,)) == "1 day"  # fmt: skip


def test_a_single_run_with_weekdays_gets_no_interval(raw_conn: connection) -> None:
    job_id = schedule(raw_conn, scheduled_for=at(day(5), "09:00"), weekdays=[0])
    job = get_job(raw_conn, job_id)
    assert (job["repeat_interval"], job["repeat_from"]) == (None, None)
    assert job["scheduled_for"] == utc(day(7), 0)


# The first run: the grid's first allowed run, or (a grid never in the window) its opening


@pytest.mark.parametrize(
    ("start", "options", "first"),
    [
        # No window or weekdays: the time asked for.
        (at(MONDAY, "23:59"), {}, utc(MONDAY, 23, 59)),
        # In the window (edges included): unchanged.
        (at(MONDAY, "02:00"), {"between": ("02:00", "18:30")}, utc(MONDAY, 2)),
        (at(MONDAY, "18:30"), {"between": ("02:00", "18:30")}, utc(MONDAY, 18, 30)),
        # Before the window: its opening that day; after it: the next day's opening.
        (at(MONDAY, "01:00"), {"between": ("02:00", "18:30")}, utc(MONDAY, 2)),
        (at(MONDAY, "18:31"), {"between": ("02:00", "18:30")}, utc(day(1), 2)),
        # Saturday 10:00, Mondays only: the first allowed run of the daily grid, Monday
        # 10:00 (the time of day asked for is kept), also with a window it is in.
        (at(day(5), "10:00"), {"weekdays": [0]}, utc(day(7), 10)),
        (
            at(day(5), "10:00"),
            {"weekdays": [0], "between": ("02:00", "18:30")},
            utc(day(7), 10),
        ),
        # Monday to Friday: Friday stays, Saturday moves to Monday, same time.
        (at(day(4), "10:00"), {"weekdays": [0, 1, 2, 3, 4]}, utc(day(4), 10)),
        (at(day(5), "10:00"), {"weekdays": [0, 1, 2, 3, 4]}, utc(day(7), 10)),
        # A window crossing midnight: Tuesday 01:00 is in Monday's window...
        (
            at(day(1), "01:00"),
            {"weekdays": [0], "between": ("22:00", "02:00")},
            utc(day(1), 1),
        ),
        # ... Wednesday 01:00 is in Tuesday's: the daily grid's next run in a Monday
        # window is the next Tuesday 01:00.
        (
            at(day(2), "01:00"),
            {"weekdays": [0], "between": ("22:00", "02:00")},
            utc(day(8), 1),
        ),
        (at(MONDAY, "21:00"), {"between": ("22:00", "02:00")}, utc(MONDAY, 22)),
        (at(MONDAY, "02:01"), {"between": ("22:00", "02:00")}, utc(MONDAY, 22)),
    ],
)
def test_the_first_run_is_moved_into_the_window_and_weekdays(
    raw_conn: connection, start: str, options: dict[str, Any], first: datetime
) -> None:
    window = options.get("between")
    job_id = schedule(
        raw_conn,
        scheduled_for=start,
        repeat=-1,
        repeat_interval="1 day",
        between_start=window and window[0],
        between_end=window and window[1],
        weekdays=options.get("weekdays"),
        time_zone="UTC",
    )
    job = get_job(raw_conn, job_id)
    assert job["scheduled_for"] == first
    # The grid's origin: the time asked for when its daily grid meets the window and
    # weekdays (the first run then keeps its time of day), else the first run itself.
    asked = fetch_value(raw_conn, "SELECT %s::timestamptz", (start,))
    expected_origin = asked if first.time() == asked.time() else first
    assert job["repeat_from"] == expected_origin


def test_the_window_is_read_in_the_schedules_time_zone(raw_conn: connection) -> None:
    # 18:30 in New York (EST, UTC-5) is 23:30 UTC: in the window.
    in_window = schedule(
        raw_conn,
        scheduled_for=at(MONDAY, "23:30"),
        repeat=-1,
        repeat_interval="1 day",
        between_start="02:00",
        between_end="18:30",
        time_zone="America/New_York",
    )
    assert get_job(raw_conn, in_window)["scheduled_for"] == utc(MONDAY, 23, 30)
    # A minute later it is out: the next opening, 02:00 EST on Tuesday, 07:00 UTC.
    out = schedule(
        raw_conn,
        scheduled_for=at(MONDAY, "23:31"),
        repeat=-1,
        repeat_interval="1 day",
        between_start="02:00",
        between_end="18:30",
        time_zone="America/New_York",
    )
    assert get_job(raw_conn, out)["scheduled_for"] == utc(day(1), 7)


def test_weekdays_are_read_in_the_schedules_time_zone(raw_conn: connection) -> None:
    # Sunday 23:30 UTC is Monday 08:30 in Tokyo: a Monday there.
    job_id = schedule(
        raw_conn,
        scheduled_for=at(day(-1), "23:30"),
        repeat=-1,
        repeat_interval="1 day",
        weekdays=[0],
        time_zone="Asia/Tokyo",
    )
    assert get_job(raw_conn, job_id)["scheduled_for"] == utc(day(-1), 23, 30)


# Repeating: each run its own row, the next one inserted when a run is claimed


@pytest.mark.parametrize("repeat", [0, 1, 3])
def test_repeat_n_gives_n_plus_one_runs(raw_conn: connection, repeat: int) -> None:
    schedule(
        raw_conn,
        scheduled_for=at(MONDAY, "09:00"),
        repeat=repeat,
        repeat_interval="1 minute" if repeat else None,
    )
    runs = claim_all(raw_conn)
    assert len(runs) == repeat + 1
    assert [offset(run) for run in runs[1:]] == [60.0 * k for k in range(1, repeat + 1)]
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_job WHERE status = 'started'") == (
        repeat + 1
    )
    assert job_count(raw_conn) == repeat + 1
    assert claim(raw_conn) is None


def test_the_claimed_run_becomes_single_and_the_next_carries_the_schedule(
    raw_conn: connection,
) -> None:
    first_id = schedule(
        raw_conn,
        "default",
        args=["Bob"],
        kwargs={"x": 1},
        scheduled_for=at(MONDAY, "09:00:30"),
        repeat=2,
        repeat_interval="1 hour",
        between_start="08:00",
        between_end="20:00",
        weekdays=[0, 1],
        time_zone="Europe/Paris",
        timeout=30,
        result_ttl=60,
        description="hourly",
    )
    before = get_job(raw_conn, first_id)
    # Due now, the grid left in 2030: its first run after now is its origin (Monday 10:00:30
    # in Paris: in the window, on a Monday), which time_travel would move out of the window.
    execute(raw_conn, "UPDATE pq_job SET scheduled_for = now() - interval '1 second'")
    run = claim(raw_conn)
    assert run["id"] == first_id
    assert run["repeat"] == 0  # a single run now
    claimed = get_job(raw_conn, first_id)
    assert claimed["status"] == "started" and claimed["repeat"] == 0

    nxt = the_pending(raw_conn)
    assert nxt["id"] > first_id
    assert nxt["repeat"] == 1
    assert nxt["scheduled_for"] == utc(MONDAY, 9) + timedelta(seconds=30)
    same = (
        "queue", "origin", "func", "args", "kwargs", "timeout", "result_ttl", "description",
        "repeat_until", "repeat_interval", "between_start", "between_end", "weekdays",
        "time_zone", "repeat_from", "cron", "schedule_name", "instance",
    )  # fmt: skip
    assert {key: nxt[key] for key in same} == {key: before[key] for key in same}
    assert nxt["weekdays"] == [0, 1] and nxt["time_zone"] == "Europe/Paris"
    assert nxt["worker"] is None and nxt["started_at"] is None

    execute(raw_conn, "UPDATE pq_job SET scheduled_for = now() - interval '1 second'"
                      " WHERE status = 'scheduled'")  # fmt: skip
    claim(raw_conn)
    assert the_pending(raw_conn)["repeat"] == 0
    claim_all(raw_conn)
    assert pending(raw_conn) == []
    assert job_count(raw_conn) == 3


def test_repeat_minus_one_goes_on(raw_conn: connection) -> None:
    schedule(raw_conn, scheduled_for=at(MONDAY, "09:00"), repeat=-1, repeat_interval="90 seconds")
    offsets = []
    for _ in range(8):
        row = the_pending(raw_conn)
        assert row["repeat"] == -1
        offsets.append(offset(row))
        time_travel(raw_conn, row["id"])
        assert claim(raw_conn)["id"] == row["id"]
    assert offsets == [90.0 * k for k in range(8)]
    assert the_pending(raw_conn)["repeat"] == -1
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_job WHERE status = 'started'") == 8


def test_repeat_until_stops_the_schedule(raw_conn: connection) -> None:
    schedule(
        raw_conn,
        scheduled_for=at(MONDAY, "09:00"),
        repeat_until=at(MONDAY, "09:02:30"),
        repeat_interval="1 minute",
    )
    runs = claim_all(raw_conn)
    assert [offset(run) for run in runs] == [0.0, 60.0, 120.0]


def test_a_run_exactly_at_repeat_until_still_runs(raw_conn: connection) -> None:
    schedule(
        raw_conn,
        scheduled_for=at(MONDAY, "09:00"),
        repeat_until=at(MONDAY, "09:02"),
        repeat_interval="1 minute",
    )
    assert [offset(run) for run in claim_all(raw_conn)] == [0.0, 60.0, 120.0]


def test_the_count_and_repeat_until_whichever_ends_first(raw_conn: connection) -> None:
    schedule(
        raw_conn,
        scheduled_for=at(MONDAY, "09:00"),
        repeat=1,
        repeat_until=at(MONDAY, "10:00"),
        repeat_interval="1 minute",
    )
    assert [offset(run) for run in claim_all(raw_conn)] == [0.0, 60.0]


def test_releasing_a_claimed_run_does_not_fork_the_schedule(raw_conn: connection) -> None:
    job_id = schedule(
        raw_conn, scheduled_for=at(MONDAY, "09:00"), repeat=-1, repeat_interval="1 minute"
    )
    time_travel(raw_conn, job_id)
    assert claim(raw_conn)["id"] == job_id
    assert fetch_value(raw_conn, "SELECT pq_release(ARRAY[%s]::bigint[], 'w1')", (job_id,)) == 1

    released = get_job(raw_conn, job_id)
    assert released["status"] == "scheduled"
    assert released["repeat"] == 0
    carrying = fetch_all(
        raw_conn, "SELECT id FROM pq_job WHERE status = 'scheduled' AND repeat <> 0"
    )
    assert len(carrying) == 1 and carrying[0][0] != job_id

    # Claimed again, the released run adds no run of its own.
    assert claim(raw_conn)["id"] == job_id
    assert len(pending(raw_conn)) == 1
    assert the_pending(raw_conn)["id"] == carrying[0][0]
    assert job_count(raw_conn) == 2


def test_a_failed_run_does_not_stop_the_schedule(raw_conn: connection) -> None:
    job_id = schedule(
        raw_conn, scheduled_for=at(MONDAY, "09:00"), repeat=2, repeat_interval="1 minute"
    )
    time_travel(raw_conn, job_id)
    claim(raw_conn)
    assert fetch_value(raw_conn, "SELECT pq_fail(%s, 'w1', 'Traceback: boom')", (job_id,))
    failed = get_job(raw_conn, job_id)
    assert (failed["status"], failed["queue"]) == ("failed", "failed")
    runs = claim_all(raw_conn)
    assert [run["repeat"] for run in runs] == [0, 0]
    assert [offset(run) for run in runs] == [60.0, 120.0]


def test_a_run_whose_worker_is_reaped_does_not_stop_the_schedule(raw_conn: connection) -> None:
    execute(raw_conn, "SELECT pq_register_worker('doomed', NULL, 1)")
    job_id = schedule(
        raw_conn, scheduled_for=at(MONDAY, "09:00"), repeat=-1, repeat_interval="1 minute"
    )
    time_travel(raw_conn, job_id)
    assert dequeue(raw_conn, ["default"], "doomed")["id"] == job_id
    execute(raw_conn, "UPDATE pq_worker SET expires_at = now() - interval '1 second'")
    execute(raw_conn, "SELECT pq_reap_workers()")
    assert get_job(raw_conn, job_id)["status"] == "failed"
    assert the_pending(raw_conn)["repeat"] == -1


def test_an_overdue_schedule_runs_once_then_goes_on_from_now_on_its_grid(
    raw_conn: connection,
) -> None:
    origin = fetch_value(
        raw_conn,
        "SELECT date_trunc('minute', now()) - interval '7 days' + interval '17.25 seconds'",
    )
    job_id = schedule(raw_conn, scheduled_for=origin, repeat=-1, repeat_interval="1 minute")
    run = claim(raw_conn)
    assert run["id"] == job_id
    assert run["scheduled_for"] == origin
    assert claim(raw_conn) is None  # the 10,080 missed runs are not replayed

    nxt = the_pending(raw_conn)
    claimed_at = run["started_at"]  # now() of the claim, which planned the next run
    assert claimed_at < nxt["scheduled_for"] <= claimed_at + timedelta(minutes=1)
    since_origin = (nxt["scheduled_for"] - origin).total_seconds()
    assert since_origin == round(since_origin / 60) * 60  # on the grid: 17.25 s past a minute
    assert nxt["scheduled_for"].second == 17
    assert nxt["scheduled_for"].microsecond == 250000
    assert nxt["repeat_from"] == origin


def test_an_overdue_run_with_a_count_uses_one_repeat(raw_conn: connection) -> None:
    origin = fetch_value(raw_conn, "SELECT now() - interval '1 hour'")
    schedule(raw_conn, scheduled_for=origin, repeat=3, repeat_interval="1 minute")
    claim(raw_conn)
    assert claim(raw_conn) is None
    assert the_pending(raw_conn)["repeat"] == 2


def test_claiming_the_next_run_notifies_the_queue(raw_conn: connection, connect: Callable) -> None:
    job_id = schedule(
        raw_conn, "reports", scheduled_for=at(MONDAY, "09:00"), repeat=1, repeat_interval="1 hour"
    )
    time_travel(raw_conn, job_id)
    listener = connect()
    listen(listener)
    assert dequeue(raw_conn, ["reports"])["id"] == job_id
    assert notifications(listener, count=1) == [(CHANNEL, "reports")]


# Named interval schedules (pq_schedule's name)


def test_a_named_schedule_is_created_replaced_listed_and_removed(raw_conn: connection) -> None:
    first = schedule(
        raw_conn, scheduled_for=at(MONDAY, "09:00"), repeat=-1, repeat_interval="1 hour",
        name="hourly",
    )  # fmt: skip
    assert get_job(raw_conn, first)["schedule_name"] == "hourly"
    second = schedule(
        raw_conn, "reports", scheduled_for=at(MONDAY, "10:00"), repeat=-1,
        repeat_interval="2 hours", name="hourly",
    )  # fmt: skip
    job = the_pending(raw_conn)  # one pending run, of the new definition
    assert job["id"] == second
    assert (job["queue"], job["scheduled_for"]) == ("reports", utc(MONDAY, 10))
    assert (job["repeat_from"], str(job["repeat_interval"])) == (utc(MONDAY, 10), "2:00:00")
    assert fetch_all(
        raw_conn, "SELECT name, schedule, queue, next_run, next_job_id FROM pq_schedules"
    ) == [("hourly", "02:00:00", "reports", utc(MONDAY, 10), second)]
    assert fetch_value(raw_conn, "SELECT pq_unschedule('hourly')") is True
    assert pending(raw_conn) == []
    assert fetch_value(raw_conn, "SELECT pq_unschedule('hourly')") is False


def test_a_named_schedules_runs_keep_its_name(raw_conn: connection) -> None:
    schedule(
        raw_conn, scheduled_for=at(MONDAY, "09:00"), repeat=2, repeat_interval="1 minute",
        name="thrice",
    )  # fmt: skip
    runs = claim_all(raw_conn)
    assert [run["schedule_name"] for run in runs] == ["thrice"] * 3
    assert [offset(run) for run in runs] == [0.0, 60.0, 120.0]
    assert fetch_all(raw_conn, "SELECT name FROM pq_schedules") == []


def test_unschedule_removes_the_last_run_of_a_counted_named_schedule(
    raw_conn: connection,
) -> None:
    """repeat=1: once the first run is claimed, the pending last run has repeat 0. It is
    still the schedule's next run: pq_unschedule must remove it, pq_schedules list it."""
    schedule(
        raw_conn, scheduled_for=at(MONDAY, "09:00"), repeat=1, repeat_interval="1 minute",
        name="twice",
    )  # fmt: skip
    execute(raw_conn, "UPDATE pq_job SET scheduled_for = now() - interval '1 second'")
    claim(raw_conn)
    last = the_pending(raw_conn)
    assert (last["schedule_name"], last["repeat"]) == ("twice", 0)
    assert fetch_all(raw_conn, "SELECT name, next_job_id FROM pq_schedules") == [
        ("twice", last["id"])
    ]
    assert fetch_value(raw_conn, "SELECT pq_unschedule('twice')") is True
    assert pending(raw_conn) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "once"}, r"name 'once' is for a repeating job, and this one runs once"),
        (
            {"name": "", "repeat": -1, "repeat_interval": "1 day"},
            r"a schedule name is 1 to 200 characters, got ''",
        ),
        (
            {"name": "n" * 201, "repeat": -1, "repeat_interval": "1 day"},
            r"a schedule name is 1 to 200 characters",
        ),
    ],
)
def test_bad_schedule_names_are_refused(
    raw_conn: connection, options: dict[str, Any], message: str
) -> None:
    with raises_pq("PQ001", rf"^pq_schedule: {message}"):
        schedule(raw_conn, scheduled_for=at(MONDAY, "09:00"), **options)
    assert job_count(raw_conn) == 0


# Validation: PQ001 naming the bad part, nothing stored


BAD_SCHEDULES = [
    ({"time_zone": "Mars/Olympus_Mons"}, r"time zone 'Mars/Olympus_Mons' is not known"),
    ({"time_zone": ""}, r"time_zone must be a time zone name, got ''"),
    ({"scheduled_for": None}, r"scheduled_for must be a finite time, got NULL"),
    ({"scheduled_for": "-infinity"}, r"scheduled_for must be a finite time, got -infinity"),
    ({"scheduled_for": "infinity"}, r"scheduled_for infinity is too far in the future"),
    ({"scheduled_for": "9999-12-31 00:00+00"}, r"scheduled_for .* is too far in the future"),
    ({"repeat": -2, "repeat_interval": "1 day"}, r"repeat must be -1 .*, got -2"),
    ({"repeat": None}, r"repeat must be -1 .*, got NULL"),
    ({"repeat": 3}, r"a repeating job needs repeat_interval"),
    ({"repeat": -1}, r"a repeating job needs repeat_interval"),
    ({"repeat_until": at(MONDAY, "10:00")}, r"a repeating job needs repeat_interval"),
    (
        {"repeat_until": at(MONDAY, "08:59"), "repeat_interval": "1 hour"},
        r"repeat_until .* is before the first run",
    ),
    ({"repeat_interval": "1 hour"}, r"repeat_interval 01:00:00 is given but repeat is 0"),
    ({"repeat": -1, "repeat_interval": "0"}, r"repeat_interval 00:00:00 must be at least 1 s"),
    ({"repeat": -1, "repeat_interval": "0.5 seconds"}, r"repeat_interval 00:00:00.5 must be"),
    ({"repeat": -1, "repeat_interval": "-1 minute"}, r"repeat_interval -00:01:00 must be"),
    ({"repeat": -1, "repeat_interval": "-1 day"}, r"repeat_interval -1 days must be"),
    ({"repeat": -1, "repeat_interval": "1 day -1 hour"}, r"repeat_interval 1 day -01:00:00 must"),
    ({"repeat": -1, "repeat_interval": "-1 mon"}, r"repeat_interval -1 mons must be"),
    ({"repeat": -1, "repeat_interval": "1 mon -40 days"}, r"repeat_interval 1 mon -40 days must"),
    (
        {"repeat": -1, "repeat_interval": "1 day", "between_start": "02:00"},
        r"a window needs both between_start and between_end, got 02:00:00 and NULL",
    ),
    (
        {"repeat": -1, "repeat_interval": "1 day", "between_end": "02:00"},
        r"a window needs both between_start and between_end, got NULL and 02:00:00",
    ),
    (
        {"between_start": "02:00", "between_end": "02:00"},
        r"the window 02:00:00 to 02:00:00 is empty",
    ),
    ({"weekdays": []}, r"weekdays is empty: the job could never run"),
    ({"weekdays": [0, 7]}, r"weekday 7 is not a day"),
    ({"weekdays": [-1]}, r"weekday -1 is not a day"),
    ({"weekdays": [1, None]}, r"weekday NULL is not a day"),
    ({"timeout": 0}, r"timeout must be a positive number of seconds, got 0"),
    ({"result_ttl": -2}, r"result_ttl must be -1 .*, got -2"),
    ({"description": "x" * 1001}, r"description is 1001 characters long"),
    ({"args": {"a": 1}}, r"args must be a JSON array, got object"),
    ({"kwargs": [1]}, r"kwargs must be a JSON object, got array"),
]


@pytest.mark.parametrize(("options", "message"), BAD_SCHEDULES)
def test_bad_schedules_are_refused_and_nothing_is_stored(
    raw_conn: connection, options: dict[str, Any], message: str
) -> None:
    options = {"scheduled_for": at(MONDAY, "09:00"), **options}
    with raises_pq("PQ001", rf"^pq_schedule: {message}"):
        schedule(raw_conn, "brand-new", **options)
    assert job_count(raw_conn) == 0
    assert fetch_all(raw_conn, "SELECT 1 FROM pq_queue WHERE name = 'brand-new'") == []


@pytest.mark.parametrize(
    ("queue", "func", "message"),
    [
        ("failed", FUNC, r"cannot enqueue on the failed queue"),
        ("default", "say_hello", r"func 'say_hello' is not a dotted path"),
        ("default", None, r"func NULL is not a dotted path"),
    ],
)
def test_bad_queue_or_func_is_refused(
    raw_conn: connection, queue: str, func: str | None, message: str
) -> None:
    with raises_pq("PQ001", rf"^pq_schedule: {message}"):
        schedule(raw_conn, queue, func)
    assert job_count(raw_conn) == 0


def test_repeat_until_before_the_first_run_after_the_weekdays_is_refused(
    raw_conn: connection,
) -> None:
    """Saturday 10:00, Mondays only: the first run is Monday 00:00, after repeat_until
    (Sunday): the job would run once, after it was meant to stop (SPEC: "repeat_until before
    the first run" is refused)."""
    with raises_pq("PQ001", r"^pq_schedule: repeat_until .* is before the first run"):
        schedule(
            raw_conn,
            scheduled_for=at(day(5), "10:00"),
            repeat_until=at(day(6), "10:00"),
            repeat_interval="1 day",
            weekdays=[0],
        )
    assert job_count(raw_conn) == 0


def test_bad_schedule_errors_carry_a_hint(raw_conn: connection) -> None:
    with pytest.raises(psycopg2.Error) as info:
        schedule(raw_conn, repeat=-1, repeat_interval="-1 minute")
    assert info.value.pgcode == "PQ001"
    assert "positive interval" in (info.value.diag.message_hint or "")


# Named cron schedules (need sql/cron.sql's pq_cron_next)


def next_three_am(after: datetime) -> datetime:
    day = after.astimezone(UTC).date()
    candidate = utc(day, 3)
    return candidate if candidate > after else utc(day + timedelta(days=1), 3)


def test_schedule_cron_creates_one_pending_tick(raw_conn: connection) -> None:
    job_id = schedule_cron(raw_conn, "nightly", "0 3 * * *", args=[1], kwargs={"k": "v"})
    job = the_pending(raw_conn)
    assert job["id"] == job_id
    assert job["schedule_name"] == "nightly"
    assert job["cron"] == "0 3 * * *"
    assert job["repeat"] == -1
    assert job["repeat_interval"] is None
    assert job["time_zone"] == "UTC"
    assert job["queue"] == job["origin"] == "default"
    assert job["func"] == FUNC
    assert (job["args"], job["kwargs"]) == ([1], {"k": "v"})
    assert job["scheduled_for"] == next_three_am(job["created_at"])


def test_schedule_cron_reads_the_fields_in_its_time_zone(raw_conn: connection) -> None:
    schedule_cron(raw_conn, "tokyo", "0 3 * * *", time_zone="Asia/Tokyo", queue_name="reports")
    job = the_pending(raw_conn)
    assert job["time_zone"] == "Asia/Tokyo"
    assert job["queue"] == "reports"
    # 03:00 in Tokyo (UTC+9, no DST) is 18:00 UTC.
    assert job["scheduled_for"].astimezone(UTC).time() == time(18, 0)
    assert job["created_at"] < job["scheduled_for"] <= job["created_at"] + timedelta(days=1)


def test_replacing_a_cron_schedule_keeps_one_pending_tick(raw_conn: connection) -> None:
    schedule_cron(raw_conn, "nightly", "0 3 * * *")
    second = schedule_cron(raw_conn, "nightly", "*/5 * * * *", args=["new"])
    job = the_pending(raw_conn)
    assert job["id"] == second
    assert job["cron"] == "*/5 * * * *"
    assert job["args"] == ["new"]
    assert job_count(raw_conn) == 1
    assert job["scheduled_for"].minute % 5 == 0
    assert job["created_at"] < job["scheduled_for"] <= job["created_at"] + timedelta(minutes=5)
    # Another name is another schedule.
    schedule_cron(raw_conn, "other", "0 3 * * *")
    assert len(pending(raw_conn)) == 2


def test_unschedule_removes_the_pending_tick_and_is_false_the_second_time(
    raw_conn: connection,
) -> None:
    schedule_cron(raw_conn, "nightly", "0 3 * * *")
    schedule_cron(raw_conn, "keep", "0 4 * * *")
    assert fetch_value(raw_conn, "SELECT pq_unschedule('nightly')") is True
    assert [job["schedule_name"] for job in pending(raw_conn)] == ["keep"]
    assert fetch_value(raw_conn, "SELECT pq_unschedule('nightly')") is False
    assert fetch_value(raw_conn, "SELECT pq_unschedule('never')") is False
    assert [row[0] for row in fetch_all(raw_conn, "SELECT name FROM pq_schedules")] == ["keep"]


def test_unschedule_leaves_a_started_run_alone(raw_conn: connection) -> None:
    job_id = schedule_cron(raw_conn, "minutely", "* * * * *")
    execute(raw_conn, "UPDATE pq_job SET scheduled_for = now() - interval '1 second'")
    assert claim(raw_conn)["id"] == job_id
    assert fetch_value(raw_conn, "SELECT pq_unschedule('minutely')") is True
    assert get_job(raw_conn, job_id)["status"] == "started"
    assert pending(raw_conn) == []


def test_a_claimed_tick_plans_the_next_and_pq_schedules_shows_both(raw_conn: connection) -> None:
    first = schedule_cron(raw_conn, "minutely", "* * * * *", queue_name="reports")
    view = fetch_all(
        raw_conn,
        "SELECT name, schedule, time_zone, queue, func, next_job_id, last_job_id, last_status"
        " FROM pq_schedules",
    )
    assert view == [("minutely", "* * * * *", "UTC", "reports", FUNC, first, None, None)]

    execute(raw_conn, "UPDATE pq_job SET scheduled_for = now() - interval '1 second'")
    run = dequeue(raw_conn, ["reports"])
    assert run["id"] == first
    nxt = the_pending(raw_conn)
    minute = run["started_at"].replace(second=0, microsecond=0) + timedelta(minutes=1)
    assert nxt["scheduled_for"] == minute  # the next whole minute after the claim
    assert nxt["schedule_name"] == "minutely" and nxt["cron"] == "* * * * *"
    assert nxt["repeat"] == -1
    assert run["repeat"] == 0

    with raw_conn.cursor() as cursor:
        cursor.execute(
            "SELECT name, next_run, next_job_id, last_job_id, last_status, last_run"
            " FROM pq_schedules"
        )
        assert cursor.fetchall() == [
            ("minutely", minute, nxt["id"], first, "started", run["scheduled_for"])
        ]


def test_one_job_per_tick_is_enforced_by_a_unique_index(raw_conn: connection) -> None:
    insert = (
        "INSERT INTO pq_job (queue, origin, status, func, scheduled_for, cron, schedule_name)"
        " VALUES ('default', 'default', 'finished', %s, '2030-01-07 03:00+00', '0 3 * * *',"
        " 'nightly')"
    )
    execute(raw_conn, insert, (FUNC,))
    with pytest.raises(psycopg2.errors.UniqueViolation) as info:
        execute(raw_conn, insert, (FUNC,))
    assert info.value.diag.constraint_name == "pq_job_schedule_tick"
    assert job_count(raw_conn) == 1


def test_one_pending_run_per_name_is_enforced_by_a_unique_index(raw_conn: connection) -> None:
    insert = (
        "INSERT INTO pq_job (queue, origin, status, func, scheduled_for, repeat, schedule_name)"
        " VALUES ('default', 'default', 'scheduled', %s, %s, -1, 'nightly')"
    )
    execute(raw_conn, insert, (FUNC, "2030-01-07 03:00+00"))
    with pytest.raises(psycopg2.errors.UniqueViolation) as info:
        execute(raw_conn, insert, (FUNC, "2030-01-08 03:00+00"))
    assert info.value.diag.constraint_name == "pq_job_schedule_next"


def test_two_transactions_claiming_a_tick_get_it_once(
    raw_conn: connection, connect: Callable
) -> None:
    job_id = schedule_cron(raw_conn, "minutely", "* * * * *")
    execute(raw_conn, "UPDATE pq_job SET scheduled_for = now() - interval '1 second'")
    first, second = connect(autocommit=False), connect(autocommit=False)
    got_first = claim(first, "racer0")
    got_second = claim(second, "racer1")  # SKIP LOCKED: not the tick being claimed
    first.commit()
    second.commit()
    assert got_first["id"] == job_id
    assert got_second is None
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_job WHERE status = 'started'") == 1
    assert len(pending(raw_conn)) == 1


@pytest.mark.parametrize("kind", ["cron", "named", "interval"])
def test_racing_workers_claim_each_tick_once(
    raw_conn: connection, connect: Callable, kind: str
) -> None:
    if kind == "cron":
        schedule_cron(raw_conn, "minutely", "* * * * *")
    else:
        schedule(
            raw_conn, scheduled_for=at(MONDAY, "09:00"), repeat=-1, repeat_interval="1 min",
            name="minutely" if kind == "named" else None,
        )  # fmt: skip
    racers = [connect() for _ in range(6)]
    rounds = 10
    for _ in range(rounds):
        execute(
            raw_conn,
            "UPDATE pq_job SET scheduled_for = now() - interval '1 second'"
            " WHERE status = 'scheduled'",
        )
        barrier = threading.Barrier(len(racers))
        claimed: list[int] = []

        def race(conn: connection, worker: str, barrier: threading.Barrier = barrier,
                 claimed: list[int] = claimed) -> None:  # fmt: skip
            barrier.wait()
            row = claim(conn, worker)
            if row is not None:
                claimed.append(row["id"])

        threads = [
            threading.Thread(target=race, args=(conn, f"racer{i}")) for i, conn in enumerate(racers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(claimed) == 1, f"a due run was claimed {len(claimed)} times"
        assert len(pending(raw_conn)) == 1
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_job WHERE status = 'started'") == rounds
    assert fetch_value(raw_conn, "SELECT count(DISTINCT scheduled_for) FROM pq_job") == rounds + 1


@pytest.mark.parametrize("kind", ["cron", "named"])
def test_replacing_a_schedule_while_its_tick_is_claimed_keeps_one_pending_tick(
    raw_conn: connection, connect: Callable, kind: str
) -> None:
    """A worker claims the due run (its trigger inserts the next one, of the old schedule)
    while the schedule is replaced (pq_schedule_cron, or pq_schedule with the name), which
    waits on the claimed row: once the claim commits, the replacement must still succeed and
    leave one pending run, of the new schedule."""

    def make(conn: connection, every: str) -> int:
        if kind == "cron":
            return schedule_cron(conn, "minutely", every)
        return schedule(
            conn, scheduled_for=at(MONDAY, "09:00"), repeat=-1, repeat_interval=every,
            name="minutely",
        )  # fmt: skip

    old, new = ("* * * * *", "*/5 * * * *") if kind == "cron" else ("1 minute", "5 minutes")
    job_id = make(raw_conn, old)
    execute(raw_conn, "UPDATE pq_job SET scheduled_for = now() - interval '1 second'")
    worker = connect(autocommit=False)
    assert claim(worker, "racer0")["id"] == job_id
    replacer = connect()
    outcome: list[object] = []

    def replace() -> None:
        try:
            outcome.append(make(replacer, new))
        except psycopg2.Error as exc:  # reported below
            outcome.append(exc)

    thread = threading.Thread(target=replace)
    thread.start()
    thread.join(timeout=1)  # it waits for the claimed row's lock
    assert thread.is_alive(), f"the replacement did not wait for the claim: {outcome!r}"
    worker.commit()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert isinstance(outcome[0], int), f"replacing the schedule failed: {outcome[0]!r}"
    job = the_pending(raw_conn)
    assert job["id"] == outcome[0]
    assert (job["cron"] if kind == "cron" else str(job["repeat_interval"])) == (
        "*/5 * * * *" if kind == "cron" else "0:05:00"
    )


def test_re_registering_an_unchanged_schedule_keeps_its_overdue_tick(
    raw_conn: connection,
) -> None:
    """Workers down over 03:00; the deploy restarting them calls q.cron(...) again, unchanged:
    the overdue 03:00 tick must still run once ("ticks missed while no worker ran run once"),
    not be replaced by tomorrow's."""
    schedule_cron(raw_conn, "nightly", "0 3 * * *")
    execute(raw_conn, "UPDATE pq_job SET scheduled_for = now() - interval '1 hour'")
    overdue = the_pending(raw_conn)["scheduled_for"]
    schedule_cron(raw_conn, "nightly", "0 3 * * *")
    assert the_pending(raw_conn)["scheduled_for"] == overdue
    assert claim(raw_conn) is not None


BAD_CRONS = [
    ({"name": ""}, r"a schedule name is 1 to 200 characters, got ''"),
    ({"name": None}, r"a schedule name is 1 to 200 characters, got NULL"),
    ({"name": "n" * 201}, r"a schedule name is 1 to 200 characters"),
    ({"expr": "0 25 * * *"}, r"cron field 2 \(hour\) '25' is out of range 0-23"),
    ({"expr": "0 3 * *"}, r"cron expression '0 3 \* \*' has 4 fields; it needs 5"),
    ({"expr": "0 0 30 2 *"}, r"cron expression '0 0 30 2 \*' never fires"),
    ({"expr": None}, r"cron expression must be five fields, got NULL"),
    ({"func": "say_hello"}, r"func 'say_hello' is not a dotted path"),
    ({"time_zone": "Mars/Olympus_Mons"}, r"time zone 'Mars/Olympus_Mons' is not known"),
    ({"time_zone": None}, r"time_zone must be a time zone name, got NULL"),
    ({"queue_name": "failed"}, r"cannot enqueue on the failed queue"),
    ({"timeout": -1}, r"timeout must be a positive number of seconds, got -1"),
    ({"args": {"a": 1}}, r"args must be a JSON array, got object"),
]


@pytest.mark.parametrize(("options", "message"), BAD_CRONS)
def test_bad_cron_schedules_are_refused_and_nothing_is_stored(
    raw_conn: connection, options: dict[str, Any], message: str
) -> None:
    schedule_cron(raw_conn, "keep", "0 3 * * *")
    call = {"name": "new", "expr": "0 4 * * *", "func": FUNC, **options}
    with raises_pq("PQ001", rf"^pq_schedule_cron: {message}"):
        schedule_cron(raw_conn, call.pop("name"), call.pop("expr"), call.pop("func"), **call)
    assert [job["schedule_name"] for job in pending(raw_conn)] == ["keep"]


def test_a_bad_replacement_keeps_the_old_schedule(raw_conn: connection) -> None:
    job_id = schedule_cron(raw_conn, "nightly", "0 3 * * *")
    with raises_pq("PQ001", r"^pq_schedule_cron: cron field 2 \(hour\)"):
        schedule_cron(raw_conn, "nightly", "0 24 * * *")
    assert the_pending(raw_conn)["id"] == job_id


# Security: EXECUTE on the scheduling functions is all a scheduler needs


@pytest.fixture
def scheduler(raw_conn: connection, role: Role) -> connection:
    """A connection as a role with EXECUTE on the three scheduling functions, nothing else."""
    execute(
        raw_conn,
        sql.SQL(
            f"GRANT EXECUTE ON FUNCTION {SCHEDULE_SIGNATURE}, {CRON_SIGNATURE},"
            f" {UNSCHEDULE_SIGNATURE} TO {{}}"
        ).format(sql.Identifier(role.name)),
    )
    return role.connect()


def test_a_scheduler_role_schedules_without_table_rights(
    raw_conn: connection, scheduler: connection
) -> None:
    job_id = schedule(
        scheduler, "reports", scheduled_for=at(MONDAY, "09:00"), repeat=-1, repeat_interval="1 h"
    )
    job = get_job(raw_conn, job_id)
    assert (job["status"], job["queue"], job["repeat"]) == ("scheduled", "reports", -1)
    with raises_pq(INSUFFICIENT_PRIVILEGE, r"^permission denied for table pq_job$"):
        fetch_all(scheduler, "SELECT * FROM pq_job")


def test_a_scheduler_role_manages_cron_schedules_without_table_rights(
    raw_conn: connection, scheduler: connection
) -> None:
    job_id = schedule_cron(scheduler, "nightly", "0 3 * * *")
    assert get_job(raw_conn, job_id)["schedule_name"] == "nightly"
    schedule_cron(scheduler, "nightly", "0 4 * * *")
    assert the_pending(raw_conn)["cron"] == "0 4 * * *"
    assert fetch_value(scheduler, "SELECT pq_unschedule('nightly')") is True
    assert pending(raw_conn) == []


def test_a_scheduler_role_unschedules_without_table_rights(
    raw_conn: connection, scheduler: connection
) -> None:
    execute(
        raw_conn,
        "INSERT INTO pq_job (queue, origin, status, func, scheduled_for, repeat, schedule_name)"
        " VALUES ('default', 'default', 'scheduled', %s, now() + interval '1 day', -1, 'n')",
        (FUNC,),
    )
    assert fetch_value(scheduler, "SELECT pq_unschedule('n')") is True
    assert fetch_value(scheduler, "SELECT pq_unschedule('n')") is False
    assert job_count(raw_conn) == 0


@pytest.mark.parametrize(
    ("call", "function"),
    [
        ("SELECT pq_schedule('default', %s)", "pq_schedule"),
        ("SELECT _pq_schedule_job('default', %s)", "_pq_schedule_job"),
        ("SELECT pq_schedule_cron('n', '0 3 * * *', %s)", "pq_schedule_cron"),
        ("SELECT pq_unschedule(%s)", "pq_unschedule"),
    ],
)
def test_a_role_without_execute_cannot_schedule(
    raw_conn: connection, role: Role, call: str, function: str
) -> None:
    app = role.connect()
    with raises_pq(INSUFFICIENT_PRIVILEGE, rf"^permission denied for function {function}$"):
        fetch_all(app, call, (FUNC,))
    assert job_count(raw_conn) == 0


@pytest.mark.parametrize(
    "signature",
    [
        SCHEDULE_SIGNATURE,
        "_pq_schedule_job(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval,"
        " time, time, integer[], text, integer, integer, text, bytea, text, integer, integer,"
        " integer[])",
        CRON_SIGNATURE,
        UNSCHEDULE_SIGNATURE,
    ],
)
def test_scheduling_functions_are_not_granted_to_public_and_pin_search_path(
    raw_conn: connection, signature: str
) -> None:
    assert (
        fetch_value(
            raw_conn, "SELECT has_function_privilege('public', %s, 'EXECUTE')", (signature,)
        )
        is False
    )
    prosecdef, config = fetch_all(
        raw_conn,
        "SELECT prosecdef, proconfig FROM pg_proc WHERE oid = %s::regprocedure",
        (signature,),
    )[0]
    schema = fetch_value(raw_conn, "SELECT current_schema()")
    assert prosecdef is True
    assert config == [f"search_path={schema}, pg_temp"]
