"""manage.py pqschedule: schedule a function at a time or on a cron schedule; list, unschedule."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from io import StringIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from psycopg2.extensions import connection

from pq.models import Schedule

ROOT = Path(__file__).resolve().parents[2]
FUNC = "tests.jobs.return_none"
PARIS = ZoneInfo("Europe/Paris")
JOB_COLUMNS = (
    "id, queue, func, args, status, scheduled_for, repeat, repeat_until, repeat_interval,"
    " between_start, between_end, weekdays, time_zone, cron, schedule_name, timeout, result_ttl,"
    " repeat_from"
)


def pqschedule(*args: str) -> str:
    out = StringIO()
    call_command("pqschedule", *args, stdout=out)
    return out.getvalue()


def select(raw_conn: connection, query: str, params: tuple = ()) -> list[tuple]:
    with raw_conn.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def the_job(raw_conn: connection) -> dict:
    """The one row of pq_job, as a dict."""
    with raw_conn.cursor() as cursor:
        cursor.execute(f"SELECT {JOB_COLUMNS} FROM pq_job")
        rows = cursor.fetchall()
        names = [column.name for column in cursor.description]
    assert len(rows) == 1, rows
    return dict(zip(names, rows[0], strict=True))


def job_count(raw_conn: connection) -> int:
    return select(raw_conn, "SELECT count(*) FROM pq_job")[0][0]


def db_now(raw_conn: connection) -> datetime:
    return select(raw_conn, "SELECT now()")[0][0]


# -- at a time -------------------------------------------------------------------------------


def test_now_schedules_a_job_due_now(raw_conn: connection) -> None:
    before = db_now(raw_conn)
    out = pqschedule("now", "tests.jobs.add", "1", "2")
    job = the_job(raw_conn)
    assert (job["queue"], job["func"], job["args"], job["status"]) == (
        "default",
        "tests.jobs.add",
        ["1", "2"],
        "scheduled",
    )
    assert before <= job["scheduled_for"] <= db_now(raw_conn)
    assert (job["repeat"], job["repeat_interval"], job["weekdays"], job["cron"]) == (
        0,
        None,
        None,
        None,
    )
    assert job["time_zone"] == "UTC"  # tests.settings.TIME_ZONE
    shown = job["scheduled_for"].astimezone(UTC).isoformat(sep=" ", timespec="seconds")
    assert (
        out.strip() == f"Scheduled job {job['id']} add('1', '2') on default for {shown} (UTC), once"
    )
    assert select(raw_conn, "SELECT scheduled_for <= now() FROM pq_job") == [(True,)]


def test_seed_example_now_repeat_daily_on_mondays_and_tuesdays(raw_conn: connection) -> None:
    before = db_now(raw_conn)
    out = pqschedule(
        "now", "tests.jobs.return_none", "--repeat=-1", "--interval=86400", "--mo", "--tu"
    )
    after = db_now(raw_conn)
    job = the_job(raw_conn)
    assert (job["status"], job["repeat"], job["repeat_interval"], job["weekdays"]) == (
        "scheduled",
        -1,
        timedelta(days=1),
        [0, 1],
    )
    assert (job["between_start"], job["between_end"], job["time_zone"]) == (None, None, "UTC")
    # The first run is now on a Monday or Tuesday, else the daily grid's run on the next
    # one: the same time of day.
    first, today = job["scheduled_for"], before.astimezone(UTC)
    if today.weekday() in (0, 1):
        assert before <= first <= after
    else:
        days = min((day - today.weekday()) % 7 for day in (0, 1))
        assert job["repeat_from"] + timedelta(days=days) == first
        assert before <= job["repeat_from"] <= after
    assert out.rstrip().endswith(", then every 1 day for ever, on Mon, Tue")


def test_seed_example_a_date_is_its_midnight(raw_conn: connection) -> None:
    out = pqschedule("2020-01-01", "tests.jobs.return_none")
    job = the_job(raw_conn)
    assert job["scheduled_for"] == datetime(2020, 1, 1, tzinfo=UTC)
    assert (job["status"], job["repeat"], job["args"]) == ("scheduled", 0, [])
    assert out.strip() == (
        f"Scheduled job {job['id']} return_none() on default for 2020-01-01 00:00:00+00:00 "
        "(UTC), once"
    )


def test_seed_example_a_datetime_with_a_one_digit_hour_and_arguments(raw_conn: connection) -> None:
    out = pqschedule("2020-01-01T9:10", "tests.jobs.echo", "arg1", "arg2")
    job = the_job(raw_conn)
    assert job["scheduled_for"] == datetime(2020, 1, 1, 9, 10, tzinfo=UTC)
    assert (job["func"], job["args"], job["status"]) == (
        "tests.jobs.echo",
        ["arg1", "arg2"],
        "scheduled",
    )
    assert "echo('arg1', 'arg2') on default for 2020-01-01 09:10:00+00:00 (UTC), once" in out


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        # naive: in the current time zone (Europe/Paris here)
        ("2026-01-01T09:10", datetime(2026, 1, 1, 9, 10, tzinfo=PARIS)),
        ("2026-01-01T9:10", datetime(2026, 1, 1, 9, 10, tzinfo=PARIS)),
        ("2026-01-01 09:10:30", datetime(2026, 1, 1, 9, 10, 30, tzinfo=PARIS)),
        ("2026-07-01T09:10", datetime(2026, 7, 1, 9, 10, tzinfo=PARIS)),  # summer time
        ("20260101T0910", datetime(2026, 1, 1, 9, 10, tzinfo=PARIS)),
        ("2026-01-01", datetime(2026, 1, 1, tzinfo=PARIS)),
        # with an offset: that instant, whatever the current time zone
        ("2026-01-01T09:10Z", datetime(2026, 1, 1, 9, 10, tzinfo=UTC)),
        ("2026-01-01T09:10+00:00", datetime(2026, 1, 1, 9, 10, tzinfo=UTC)),
        ("2026-01-01T09:10-05:00", datetime(2026, 1, 1, 14, 10, tzinfo=UTC)),
    ],
)
def test_naive_times_are_read_in_the_current_time_zone(
    raw_conn: connection, when: str, expected: datetime
) -> None:
    with timezone.override(PARIS):
        out = pqschedule(when, "tests.jobs.return_none")
    job = the_job(raw_conn)
    assert job["scheduled_for"] == expected
    assert job["time_zone"] == "Europe/Paris"
    shown = expected.astimezone(PARIS).isoformat(sep=" ")
    assert f" for {shown} (Europe/Paris), once" in out


def test_the_time_zone_option_reads_times_and_rules_in_that_zone(raw_conn: connection) -> None:
    out = pqschedule(
        "2026-01-05T01:00",  # a Monday, before the window opens
        "tests.jobs.return_none",
        "--repeat=-1",
        "--interval=86400",
        "--between=9:00/17:00",
        "--mo",
        "--time-zone=America/New_York",
    )
    job = the_job(raw_conn)
    new_york = ZoneInfo("America/New_York")
    assert job["time_zone"] == "America/New_York"
    assert job["scheduled_for"] == datetime(2026, 1, 5, 9, tzinfo=new_york)  # the window opens
    assert (job["between_start"], job["between_end"], job["weekdays"]) == (time(9), time(17), [0])
    assert "for 2026-01-05 09:00:00-05:00 (America/New_York), then every 1 day for ever" in out
    assert out.rstrip().endswith("between 09:00 and 17:00, on Mon")


def test_repeat_a_number_of_times(raw_conn: connection) -> None:
    out = pqschedule(
        "2026-01-01T00:00", "tests.jobs.return_none", "--repeat", "10", "--interval", "90"
    )
    job = the_job(raw_conn)
    assert (job["repeat"], job["repeat_until"], job["repeat_interval"]) == (
        10,
        None,
        timedelta(seconds=90),
    )
    assert out.rstrip().endswith("then every 1 minute 30 seconds, 10 more times")


def test_negative_numbers_as_separate_words(raw_conn: connection) -> None:
    pqschedule("now", "tests.jobs.echo", "-5", "--repeat", "-1", "--interval", "60")
    job = the_job(raw_conn)
    assert (job["args"], job["repeat"], job["repeat_interval"]) == (
        ["-5"],
        -1,
        timedelta(minutes=1),
    )


def test_repeat_until_a_date(raw_conn: connection) -> None:
    out = pqschedule(
        "2026-01-01T00:00", "tests.jobs.return_none", "--repeat=2026-12-31", "--interval=3600"
    )
    job = the_job(raw_conn)
    assert (job["repeat"], job["repeat_until"], job["repeat_interval"]) == (
        -1,
        datetime(2026, 12, 31, tzinfo=UTC),
        timedelta(hours=1),
    )
    assert out.rstrip().endswith("then every 1 hour until 2026-12-31 00:00:00+00:00")


def test_repeat_until_a_datetime_with_an_offset(raw_conn: connection) -> None:
    pqschedule(
        "2026-01-01",
        "tests.jobs.return_none",
        "--repeat=2026-06-30T18:00+02:00",
        "--interval=86400",
    )
    assert the_job(raw_conn)["repeat_until"] == datetime(2026, 6, 30, 16, tzinfo=UTC)


@pytest.mark.parametrize(
    ("between", "start", "end", "first"),
    [
        ("2:00/18:30", time(2), time(18, 30), datetime(2026, 1, 1, 2, tzinfo=UTC)),
        ("2.00-18.30", time(2), time(18, 30), datetime(2026, 1, 1, 2, tzinfo=UTC)),
        ("2-18:30", time(2), time(18, 30), datetime(2026, 1, 1, 2, tzinfo=UTC)),
        ("22:00-02:00", time(22), time(2), datetime(2026, 1, 1, 1, tzinfo=UTC)),  # in the window
    ],
)
def test_between_is_a_daily_window(
    raw_conn: connection, between: str, start: time, end: time, first: datetime
) -> None:
    out = pqschedule(
        "2026-01-01T01:00",
        "tests.jobs.return_none",
        "--repeat=-1",
        "--interval=86400",
        f"--between={between}",
    )
    job = the_job(raw_conn)
    assert (job["between_start"], job["between_end"]) == (start, end)
    assert job["scheduled_for"] == first
    assert out.rstrip().endswith(f"between {start:%H:%M} and {end:%H:%M}")


def test_weekdays_move_a_single_run_to_the_next_allowed_day(raw_conn: connection) -> None:
    pqschedule("2026-01-01T09:00", "tests.jobs.return_none", "--sa", "--su")  # a Thursday
    job = the_job(raw_conn)
    assert (job["weekdays"], job["repeat"]) == ([5, 6], 0)
    assert job["scheduled_for"] == datetime(2026, 1, 3, tzinfo=UTC)  # Saturday's midnight


def test_all_the_weekday_flags(raw_conn: connection) -> None:
    flags = ["--mo", "--tu", "--we", "--th", "--fr", "--sa", "--su"]
    out = pqschedule("2026-01-01", "tests.jobs.return_none", *reversed(flags))
    assert the_job(raw_conn)["weekdays"] == [0, 1, 2, 3, 4, 5, 6]
    assert out.rstrip().endswith("once, on Mon, Tue, Wed, Thu, Fri, Sat, Sun")


def test_job_options(raw_conn: connection) -> None:
    out = pqschedule(
        "2026-01-01", "tests.jobs.say_hello", "Bob", "-q", "mail", "-t", "30", "--result-ttl=-1"
    )
    job = the_job(raw_conn)
    assert (job["queue"], job["args"], job["timeout"], job["result_ttl"]) == (
        "mail",
        ["Bob"],
        30,
        -1,
    )
    assert f"Scheduled job {job['id']} say_hello('Bob') on mail for" in out


def test_priority_and_retry_at_a_time_and_on_cron(raw_conn: connection) -> None:
    pqschedule("now", FUNC, "--priority=20", "--retry=2", "--retry-interval", "5", "60")
    pqschedule("--cron", "0 3 * * *", FUNC, "--name=nightly", "-p", "-1", "--retry=1")
    assert select(
        raw_conn, "SELECT cron, priority, max_retries, retry_intervals FROM pq_job ORDER BY id"
    ) == [(None, 20, 2, [5, 60]), ("0 3 * * *", -1, 1, [0])]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--priority=200",), r"^pqschedule: priority must be a whole number from -100 to 100"),
        (("--retry=-3",), r"^Retry\(max=...\) must be a whole number, 0 or more, got -3"),
        (("--retry-interval", "9"), r"^--retry-interval needs --retry MAX"),
    ],
)
def test_bad_priority_or_retry_is_refused(raw_conn: connection, args: tuple, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        pqschedule("now", FUNC, *args)
    assert job_count(raw_conn) == 0


def test_another_connection() -> None:
    out = pqschedule("now", "tests.jobs.say_hello", "--connection=other")
    assert re.match(r"Scheduled job \d+ say_hello\(\) on default", out)


def test_serial_makes_the_queue_serial(raw_conn: connection) -> None:
    out = pqschedule("2026-01-01", "tests.jobs.say_hello", "--queue=reports", "--serial")
    assert " on reports for " in out
    assert select(raw_conn, "SELECT serial FROM pq_queue WHERE name = 'reports'") == [(True,)]
    assert the_job(raw_conn)["queue"] == "reports"


def test_serial_without_a_queue_is_the_serial_queue(raw_conn: connection) -> None:
    pqschedule("2026-01-01", "tests.jobs.say_hello", "--serial")
    assert the_job(raw_conn)["queue"] == "serial"
    assert select(raw_conn, "SELECT serial FROM pq_queue WHERE name = 'default'") == [(False,)]


def test_name_makes_a_repeating_job_a_named_schedule(raw_conn: connection) -> None:
    out = pqschedule(
        "2026-01-01", "tests.jobs.add", "1", "2", "--repeat=-1", "--interval=3600", "--name=hourly"
    )
    job = the_job(raw_conn)
    assert (job["schedule_name"], job["repeat"], job["repeat_interval"], job["cron"]) == (
        "hourly",
        -1,
        timedelta(hours=1),
        None,
    )
    assert out.strip() == (
        f"Scheduled 'hourly': job {job['id']} add('1', '2') on default for "
        "2026-01-01 00:00:00+00:00 (UTC), then every 1 hour for ever"
    )
    [line] = pqschedule("--list").splitlines()[1:]
    assert line.split()[:4] == ["hourly", "01:00:00", "UTC", "default"]
    assert f"tests.jobs.add  2026-01-01 00:00:00+00:00 (job {job['id']})" in re.sub(
        " {2,}", "  ", line
    )


def test_name_again_replaces_the_named_schedule(raw_conn: connection) -> None:
    pqschedule("2026-01-01", FUNC, "--repeat=-1", "--interval=3600", "--name=hourly")
    pqschedule("2026-02-01", "tests.jobs.echo", "x", "--repeat=5", "--interval=60", "--name=hourly")
    job = the_job(raw_conn)  # one pending row: the new one
    assert (job["schedule_name"], job["func"], job["args"], job["repeat"]) == (
        "hourly",
        "tests.jobs.echo",
        ["x"],
        5,
    )
    assert (job["scheduled_for"], job["repeat_interval"]) == (
        datetime(2026, 2, 1, tzinfo=UTC),
        timedelta(minutes=1),
    )
    assert len(pqschedule("--list").splitlines()) == 2


def test_unschedule_removes_a_named_interval_schedule(raw_conn: connection) -> None:
    pqschedule("now", FUNC, "--repeat=-1", "--interval=86400", "--mo", "--name=weekly")
    assert pqschedule("--unschedule", "weekly").strip() == "Unscheduled 'weekly'"
    assert job_count(raw_conn) == 0
    assert pqschedule("--list").startswith("No named schedules")


# -- cron ------------------------------------------------------------------------------------


def next_three_oclock(after: datetime, zone: ZoneInfo) -> datetime:
    """The first 03:00 in ``zone`` strictly after ``after`` (03:00 exists every day there)."""
    local = after.astimezone(zone)
    tick = datetime.combine(local.date(), time(3), tzinfo=zone)
    return (
        tick
        if tick > after
        else datetime.combine(local.date() + timedelta(days=1), time(3), tzinfo=zone)
    )


def test_cron_creates_a_named_schedule(raw_conn: connection) -> None:
    before = db_now(raw_conn)
    out = pqschedule(
        "--cron",
        "0 3 * * *",
        "tests.jobs.add",
        "1",
        "2",
        "--name=nightly",
        "--time-zone=Europe/Paris",
    )
    job = the_job(raw_conn)
    assert (job["status"], job["cron"], job["schedule_name"], job["time_zone"], job["repeat"]) == (
        "scheduled",
        "0 3 * * *",
        "nightly",
        "Europe/Paris",
        -1,
    )
    assert (job["func"], job["args"], job["queue"]) == ("tests.jobs.add", ["1", "2"], "default")
    assert job["scheduled_for"] == next_three_oclock(before, PARIS)
    shown = job["scheduled_for"].astimezone(PARIS).isoformat(sep=" ")
    assert out.strip() == (
        f"Scheduled 'nightly': add('1', '2') on default at '0 3 * * *' (Europe/Paris); "
        f"next run {shown} (job {job['id']})"
    )


def test_cron_defaults_to_the_function_name_and_the_current_time_zone(raw_conn: connection) -> None:
    before = db_now(raw_conn)
    out = pqschedule(
        "--cron",
        "0 3 * * *",
        "tests.jobs.return_none",
        "-q",
        "nightly",
        "-t",
        "60",
        "--result-ttl=10",
    )
    job = the_job(raw_conn)
    assert (
        job["schedule_name"],
        job["time_zone"],
        job["queue"],
        job["timeout"],
        job["result_ttl"],
    ) == (
        "tests.jobs.return_none",
        "UTC",
        "nightly",
        60,
        10,
    )
    assert job["scheduled_for"] == next_three_oclock(before, ZoneInfo("UTC"))
    assert out.startswith("Scheduled 'tests.jobs.return_none': return_none() on nightly")


def test_cron_again_replaces_the_schedule(raw_conn: connection) -> None:
    pqschedule("--cron", "0 3 * * *", "tests.jobs.return_none", "--name=n")
    pqschedule("--cron", "*/5 * * * *", "tests.jobs.say_hello", "Ann", "--name=n")
    job = the_job(raw_conn)
    assert (job["cron"], job["func"], job["args"]) == (
        "*/5 * * * *",
        "tests.jobs.say_hello",
        ["Ann"],
    )


def test_cron_with_serial(raw_conn: connection) -> None:
    pqschedule("--cron", "0 3 * * *", "tests.jobs.return_none", "--queue=reports", "--serial")
    assert select(raw_conn, "SELECT serial FROM pq_queue WHERE name = 'reports'") == [(True,)]
    assert the_job(raw_conn)["queue"] == "reports"


# -- list and unschedule ---------------------------------------------------------------------


def test_list_without_schedules() -> None:
    assert pqschedule("--list").strip() == (
        "No named schedules (create one: --cron EXPR, or --name NAME on a repeating job)"
    )


def test_list_shows_the_named_schedules(raw_conn: connection) -> None:
    pqschedule(
        "--cron",
        "0 3 * * *",
        "tests.jobs.add",
        "1",
        "2",
        "--name=nightly",
        "--time-zone=Europe/Paris",
    )
    pqschedule("--cron", "*/5 * * * *", "tests.jobs.return_none", "--queue=often")
    [(nightly_id, nightly_next)] = select(
        raw_conn, "SELECT id, scheduled_for FROM pq_job WHERE schedule_name = 'nightly'"
    )
    lines = pqschedule("--list").splitlines()
    assert len(lines) == 3
    assert lines[0].split() == [
        "NAME",
        "SCHEDULE",
        "ZONE",
        "QUEUE",
        "FUNC",
        "NEXT",
        "RUN",
        "LAST",
        "JOB",
        "PRIORITY",
        "RETRIES",
    ]
    assert lines[1].split()[:7] == ["nightly", "0", "3", "*", "*", "*", "Europe/Paris"]
    shown = nightly_next.astimezone(PARIS).isoformat(sep=" ")
    assert f"default  tests.jobs.add  {shown} (job {nightly_id})" in re.sub(" {2,}", "  ", lines[1])
    assert lines[1].split()[-3:] == ["-", "0", "-"]  # no run yet; priority 0, no retries
    assert lines[2].split()[0] == "tests.jobs.return_none"
    assert "often" in lines[2].split()

    # A worker claims the tick: the next tick is planned and the claimed job is the last one.
    select(
        raw_conn, "UPDATE pq_job SET status = 'started' WHERE id = %s RETURNING id", (nightly_id,)
    )
    lines = pqschedule("--list").splitlines()
    assert lines[1].split()[-4:-2] == [str(nightly_id), "started"]


def test_unschedule_removes_a_named_schedule(raw_conn: connection) -> None:
    pqschedule("--cron", "0 3 * * *", "tests.jobs.return_none", "--name=nightly")
    pqschedule("--cron", "0 4 * * *", "tests.jobs.return_none", "--name=other")
    assert pqschedule("--unschedule", "nightly").strip() == "Unscheduled 'nightly'"
    assert select(raw_conn, "SELECT schedule_name FROM pq_job") == [("other",)]
    assert "nightly" not in pqschedule("--list")


def test_unschedule_of_an_unknown_name_is_a_command_error(raw_conn: connection) -> None:
    pqschedule("--cron", "0 3 * * *", "tests.jobs.return_none", "--name=nightly")
    with pytest.raises(CommandError, match=r"no schedule named 'nope'; pqschedule --list shows"):
        pqschedule("--unschedule", "nope")
    assert job_count(raw_conn) == 1


# -- bad input: a CommandError naming the problem, and nothing stored -----------------------


@pytest.mark.parametrize(
    ("args", "error"),
    [
        # when
        ((), r"say when and what to run: pqschedule now\|ISO8601 dotted.func"),
        (
            ("tomorow", FUNC),
            r"^pqschedule: 'tomorow' is not 'now' or an ISO 8601 date or datetime "
            r"\(e\.g\. 2026-01-01 or 2026-01-01T09:10\)",
        ),
        (("2026-13-01", FUNC), r"'2026-13-01' is not 'now' or an ISO 8601 date"),
        (("2026-01-01T25:00", FUNC), r"'2026-01-01T25:00' is not 'now' or an ISO 8601"),
        (
            (FUNC,),
            r"'tests.jobs.return_none' is not 'now' or an ISO 8601 .*write when to run first",
        ),
        (("now",), r"which function to run 'now'\? write pqschedule now dotted.func"),
        # the function
        (
            ("now", "tests.jobs.no_such_function"),
            r"cannot schedule tests.jobs.no_such_function \(ImportError: .*has no attribute",
        ),
        (("now", "no_such_pq_module.func"), r"cannot schedule no_such_pq_module.func .*no module"),
        (("now", "say_hello"), r"cannot schedule say_hello .*dotted path"),
        # --between
        (("now", FUNC, "--between=2-25"), r"--between '2-25': the end hour 25 is not 0-23"),
        (
            ("now", FUNC, "--between=soon"),
            r"--between 'soon' is not a window; write it as 'H:MM/H:MM'",
        ),
        (("now", FUNC, "--between=2:00/2:00"), r"--between '2:00/2:00' is empty"),
        # --repeat and --interval
        (
            ("now", FUNC, "--repeat=-1", "--interval=0"),
            r"--interval '0' is not a time between runs; give a number of seconds",
        ),
        (
            ("now", FUNC, "--repeat=-1", "--interval=-60"),
            r"--interval '-60' is not a time between runs",
        ),
        (
            ("now", FUNC, "--repeat=3", "--interval=0.5"),
            r"--interval '0.5' is not a time between runs",
        ),
        (("now", FUNC, "--repeat=3", "--interval=hourly"), r"--interval 'hourly' is not a time"),
        (("now", FUNC, "--repeat=-1"), r"--repeat -1 needs --interval SECONDS"),
        (("now", FUNC, "--repeat=2030-01-01"), r"--repeat 2030-01-01 needs --interval SECONDS"),
        (("now", FUNC, "--interval=60"), r"--interval 60 without --repeat would run the job once"),
        (
            ("now", FUNC, "--repeat=-2", "--interval=60"),
            r"--repeat '-2' is not a number of repeats \(N more runs, -1 for ever\) nor an ISO",
        ),
        (("now", FUNC, "--repeat=often", "--interval=60"), r"--repeat 'often' is not a number"),
        (
            ("2026-01-01", FUNC, "--repeat=2025-01-01", "--interval=60"),
            r"repeat_until .* is before the first run",
        ),
        # job options
        (("now", FUNC, "--timeout=0"), r"timeout must be a positive number of seconds, got 0"),
        (("now", FUNC, "--timeout=soon"), r"argument --timeout/-t: invalid int value: 'soon'"),
        (
            ("now", FUNC, "--time-zone=Mars/Olympus"),
            r"--time-zone 'Mars/Olympus' is not a time zone; use an IANA name",
        ),
        (
            ("now", FUNC, "--connection=nope"),
            r"--connection 'nope' is not in settings.DATABASES \(known: default, other\)",
        ),
        (("now", FUNC, "--name=n"), r"name 'n' is for a repeating job, and this one runs once"),
        (
            ("now", FUNC, "--repeat=-1", "--interval=60", "--name="),
            r"a schedule name is 1 to 200 characters",
        ),
        (("now", FUNC, "--queue=failed"), r"cannot enqueue on the failed queue"),
        # cron
        (("--cron", "0 25 * * *", FUNC), r"cron field 2 \(hour\) '25' is out of range 0-23"),
        (("--cron", "0 3 * *", FUNC), r"cron expression '0 3 \* \*' has 4 fields; it needs 5"),
        (("--cron", "0 0 30 2 *", FUNC), r"cron expression '0 0 30 2 \*' never fires"),
        (
            ("--cron", "0 3 * * *", FUNC, "--time-zone=Mars/Olympus"),
            r"--time-zone 'Mars/Olympus' is not a time zone",
        ),
        (
            ("--cron", "0 3 * * *", "tests.jobs.no_such_function"),
            r"cannot schedule tests.jobs.no_such_function",
        ),
        (
            ("--cron", "0 3 * * *"),
            r"which function to run\? write pqschedule --cron EXPR dotted.func",
        ),
        (
            ("--cron", "0 3 * * *", "now", FUNC),
            r"--cron runs at the ticks of its expression; drop the time 'now'",
        ),
        (
            ("--cron", "0 3 * * *", FUNC, "--repeat=-1", "--interval=60"),
            r"--cron schedules by the cron expression; drop --repeat, --interval",
        ),
        (("--cron", "0 3 * * *", FUNC, "--mo"), r"drop --mo \.\.\. --su"),
        (("--cron", "0 3 * * *", FUNC, "--name="), r"a schedule name is 1 to 200 characters"),
        # list and unschedule
        (("--list", FUNC), r"--list takes no function or time, got 'tests.jobs.return_none'"),
        (("--list", "--queue=x"), r"--list takes no job options; drop --queue"),
        (("--list", "--priority=1"), r"--list takes no job options; drop --priority"),
        (("--unschedule", "n", "--serial"), r"--unschedule takes no job options; drop --serial"),
        (("--list", "--unschedule", "n"), r"not allowed with argument"),
        (("--list", "--cron", "0 3 * * *"), r"not allowed with argument"),
    ],
)
def test_bad_input_is_a_command_error_and_stores_nothing(
    raw_conn: connection, args: tuple[str, ...], error: str
) -> None:
    with pytest.raises(CommandError, match=error):
        pqschedule(*args)
    assert job_count(raw_conn) == 0


def test_a_failed_serial_schedule_leaves_the_queue_as_it_was(raw_conn: connection) -> None:
    with pytest.raises(CommandError, match="repeat_until"):
        pqschedule(
            "2026-01-01",
            FUNC,
            "--queue=reports",
            "--serial",
            "--repeat=2025-01-01",
            "--interval=60",
        )
    assert job_count(raw_conn) == 0
    assert select(raw_conn, "SELECT serial FROM pq_queue WHERE name = 'reports'") in (
        [],
        [(False,)],
    )


def test_from_the_command_line(raw_conn: connection) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "django", "pqschedule", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = run("now", "tests.jobs.return_none", "--repeat=-1", "--interval=86400", "--mo", "--tu")
    assert done.returncode == 0, done.stderr
    job = the_job(raw_conn)
    assert (job["repeat"], job["weekdays"]) == (-1, [0, 1])
    assert done.stdout.startswith(f"Scheduled job {job['id']} return_none() on default for ")

    failed = run("tomorow", "tests.jobs.return_none")
    assert failed.returncode == 1
    assert "CommandError: pqschedule: 'tomorow' is not 'now'" in failed.stderr

    assert "usage:" in run("--help").stdout


def test_list_shows_each_schedules_priority_and_retries() -> None:
    pqschedule("--cron", "0 3 * * *", FUNC, "--name=a_plain")
    pqschedule("--cron", "0 4 * * *", FUNC, "--name=b_urgent", "-p", "-7", "--retry=1")
    pqschedule(
        "--cron", "0 5 * * *", FUNC, "--name=c_retried", "--retry=2", "--retry-interval", "5", "60"
    )
    lines = pqschedule("--list").splitlines()
    assert lines[0].split()[-2:] == ["PRIORITY", "RETRIES"]
    assert lines[1].split()[-2:] == ["0", "-"]
    assert lines[2].split()[-4:] == ["-7", "1", "(0", "s)"]
    assert lines[3].split()[-5:] == ["0", "2", "(5,", "60", "s)"]

    rows = {s.name: (s.priority, s.max_retries, s.retry_intervals) for s in Schedule.objects.all()}
    assert rows == {"a_plain": (0, 0, None), "b_urgent": (-7, 1, [0]), "c_retried": (0, 2, [5, 60])}
