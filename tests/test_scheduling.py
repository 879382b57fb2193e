"""Queue.schedule, schedule_call, cron and unschedule: the seed's scheduling API, on PostgreSQL.

The examples of the seed README's "Scheduling" section run here as written, with current
dates; what each stores is checked in pq_job with SQL. The next-run rules are tested in
tests/sql/test_next_run.py, claims and repeats in tests/sql/test_schedule.py.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import FR, MO, SU, TH, TU, WE, relativedelta
from django.db import connections, transaction
from django.test import override_settings
from django.utils import timezone
from django.utils.timezone import now
from psycopg2.extensions import connection

import pq
from pq.exceptions import InvalidArgument
from pq.models import Job, JobStatus
from pq.queue import Queue
from tests import jobs
from tests.claims import claim

say_hello = jobs.say_hello
do_nothing = jobs.return_none
utc = UTC
MONDAY = datetime(2030, 1, 7, tzinfo=UTC)
assert MONDAY.weekday() == 0


def stored(raw_conn: connection, query: str, *params: object) -> list[tuple]:
    with raw_conn.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def row(raw_conn: connection, job: Job, columns: str) -> tuple:
    """The ``columns`` of ``job``'s pq_job row, read with SQL."""
    rows = stored(raw_conn, f"SELECT {columns} FROM pq_job WHERE id = %s", job.pk)
    assert len(rows) == 1
    return rows[0]


def interval_of(raw_conn: connection, job: Job) -> str:
    return row(raw_conn, job, "repeat_interval::text")[0]


def count(raw_conn: connection) -> int:
    return stored(raw_conn, "SELECT count(*) FROM pq_job")[0][0]


def first_day_of_next_month() -> datetime:
    n = now()
    return datetime(n.year, n.month, 1, tzinfo=utc) + relativedelta(months=1)


def claim_due(job: Job) -> dict[str, Any]:
    """Make ``job`` due (its due time one second ago, its grid left alone), claim it as a
    worker would, and return the claimed row."""
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "UPDATE pq_job SET scheduled_for = now() - interval '1 second' WHERE id = %s",
            [job.pk],
        )
        claimed = claim(cursor, [job.queue], "test-worker")
    assert claimed is not None and claimed["id"] == job.pk
    return claimed


def grid(raw_conn: connection, job: Job, runs: int) -> list[datetime]:
    """Runs 1 to ``runs`` of ``job``'s interval grid, as SQL computes them."""
    steps = stored(
        raw_conn,
        "SELECT _pq_schedule_step(repeat_from, repeat_interval, time_zone, k)"
        " FROM pq_job, generate_series(1, %s) AS k WHERE id = %s ORDER BY k",
        runs,
        job.pk,
    )
    return [step for (step,) in steps]


def pending(queue: str = "default") -> list[Job]:
    return list(Job.objects.filter(queue=queue, status=JobStatus.SCHEDULED).order_by("id"))


# The seed's examples


def test_queue_accepts_scheduled_true() -> None:
    q = Queue(scheduled=True)
    assert q.name == "default"
    assert q.scheduled is True
    assert Queue().scheduled is False


def test_seed_simple_schedule(raw_conn: connection) -> None:
    future = datetime(now().year + 1, 1, 1, tzinfo=utc)
    q = Queue(scheduled=True)
    job = q.schedule(future, say_hello, "you")
    assert isinstance(job, Job)
    assert job.status == JobStatus.SCHEDULED
    assert job.scheduled_for == future
    assert job.func == "tests.jobs.say_hello"
    assert job.args == ["you"]
    assert job.kwargs == {}
    assert row(raw_conn, job, "status, scheduled_for, repeat, repeat_interval, time_zone") == (
        "scheduled",
        future,
        0,
        None,
        "UTC",
    )


def test_schedule_passes_keywords_to_the_function(raw_conn: connection) -> None:
    job = Queue().schedule(MONDAY, jobs.echo, 1, "two", three=3)
    assert row(raw_conn, job, "args, kwargs") == ([1, "two"], {"three": 3})


def test_seed_schedule_call_with_a_timeout(raw_conn: connection) -> None:
    future = datetime(now().year + 1, 1, 1, tzinfo=utc)
    job = Queue(scheduled=True).schedule_call(
        future, say_hello, args=("Happy New Year",), timeout=60
    )
    assert job.status == JobStatus.SCHEDULED
    assert job.scheduled_for == future
    assert row(raw_conn, job, "args, timeout, repeat") == (["Happy New Year"], 60, 0)


def test_seed_repeat_ten_times_every_sixty_seconds(raw_conn: connection) -> None:
    at = now()
    job = Queue(scheduled=True).schedule_call(
        at, say_hello, args=("you & you",), repeat=10, interval=60
    )
    assert job.status == JobStatus.SCHEDULED
    assert job.scheduled_for == at
    assert job.repeat == 10
    assert row(raw_conn, job, "repeat_interval::text, repeat_from, repeat_until") == (
        "00:01:00",
        at,
        None,
    )


def test_seed_repeat_for_ever_every_day(raw_conn: connection) -> None:
    at = now()
    job = Queue(scheduled=True).schedule_call(
        at, say_hello, args=("groundhog day",), repeat=-1, interval=60 * 60 * 24
    )
    assert (job.scheduled_for, job.repeat) == (at, -1)
    assert interval_of(raw_conn, job) == "1 day"  # a calendar day in the schedule's zone


@pytest.mark.parametrize("between", ["2:00/18:30", "2.00-18.30", "2-18:30", " 02:00 - 18:30 "])
def test_seed_between_spellings(raw_conn: connection, between: str) -> None:
    at = now()
    job = Queue(scheduled=True).schedule_call(
        at, say_hello, args=("groundhog day",), repeat=-1, interval=60 * 60 * 24, between=between
    )
    assert row(raw_conn, job, "between_start, between_end") == (time(2, 0), time(18, 30))
    # The first run is now if now is in the window, else the window's next opening.
    clock = at.time()
    if time(2, 0) <= clock <= time(18, 30):
        first = at
    else:
        day = at.date() + timedelta(days=1 if clock > time(18, 30) else 0)
        first = datetime.combine(day, time(2, 0), tzinfo=utc)
    assert job.scheduled_for == first
    assert row(raw_conn, job, "repeat_from")[0] == first  # the grid starts at the first run


def test_a_window_crossing_midnight(raw_conn: connection) -> None:
    job = Queue().schedule_call(
        MONDAY.replace(hour=12), do_nothing, repeat=-1, interval=3600, between="22:00-02:00"
    )
    assert row(raw_conn, job, "between_start, between_end") == (time(22, 0), time(2, 0))
    assert job.scheduled_for == MONDAY.replace(hour=22)


def test_a_window_as_a_pair_of_times(raw_conn: connection) -> None:
    job = Queue().schedule_call(
        MONDAY, do_nothing, repeat=-1, interval=3600, between=(time(9, 15), time(17, 45))
    )
    # The hourly grid from Monday 00:00, its runs before 09:15 skipped.
    assert job.scheduled_for == MONDAY.replace(hour=10)


def test_seed_weekdays_example_without_an_interval_repeats_daily(raw_conn: connection) -> None:
    """The seed's ``q.schedule_call(dt, do_nothing, repeat=-1, weekdays=(MO, ..., FR))``
    gives no interval: with weekdays (or a window) it is one day."""
    dt = MONDAY + timedelta(days=5, hours=11, minutes=50)  # Saturday 11:50
    q = Queue(scheduled=True)
    job = q.schedule_call(dt, do_nothing, repeat=-1, weekdays=(MO, TU, WE, TH, FR))
    assert interval_of(raw_conn, job) == "1 day"
    # Monday, at the time of day asked for; the grid keeps its origin.
    assert job.scheduled_for == MONDAY + timedelta(days=7, hours=11, minutes=50)
    assert row(raw_conn, job, "repeat_from, weekdays") == (dt, [0, 1, 2, 3, 4])


def test_repeat_without_an_interval_window_or_weekdays_is_refused(raw_conn: connection) -> None:
    with pytest.raises(
        InvalidArgument, match=r"^pq_schedule: a repeating job needs repeat_interval"
    ):
        Queue().schedule_call(MONDAY, do_nothing, repeat=-1)
    assert count(raw_conn) == 0


def test_seed_weekdays_monday_to_friday(raw_conn: connection) -> None:
    saturday = MONDAY + timedelta(days=5, hours=10)
    q = Queue(scheduled=True)
    job = q.schedule_call(
        saturday, do_nothing, repeat=-1, interval=86400, weekdays=(MO, TU, WE, TH, FR)
    )
    assert row(raw_conn, job, "weekdays")[0] == [0, 1, 2, 3, 4]
    assert job.scheduled_for == MONDAY + timedelta(days=7, hours=10)  # Monday, same time
    assert job.weekdays == [0, 1, 2, 3, 4]


def test_seed_weekdays_as_integers(raw_conn: connection) -> None:
    job = Queue(scheduled=True).schedule_call(
        MONDAY + timedelta(days=3), do_nothing, repeat=-1, interval=86400, weekdays=(0, 1, 2)
    )
    assert row(raw_conn, job, "weekdays")[0] == [0, 1, 2]
    assert job.scheduled_for == MONDAY + timedelta(days=7)


def test_weekdays_mixed_unsorted_and_repeated(raw_conn: connection) -> None:
    job = Queue().schedule_call(MONDAY, do_nothing, repeat=-1, interval=86400, weekdays=[SU, 0, MO])
    assert row(raw_conn, job, "weekdays")[0] == [0, 6]


def test_seed_monthly_on_the_first(raw_conn: connection) -> None:
    dt = first_day_of_next_month()
    monthly = relativedelta(months=1)
    job = Queue(scheduled=True).schedule_call(
        dt, say_hello, args=("groundhog day",), repeat=-1, interval=monthly
    )
    assert job.scheduled_for == dt
    assert interval_of(raw_conn, job) == "1 mon"
    assert grid(raw_conn, job, 3) == [dt + relativedelta(months=k) for k in (1, 2, 3)]
    # Claimed (made due early), its next run is the first of the grid after now: the origin.
    claimed = claim_due(job)
    assert claimed["repeat"] == 0
    (nxt,) = pending()
    assert (nxt.scheduled_for, nxt.repeat, nxt.args) == (dt, -1, ["groundhog day"])


def test_seed_last_day_of_the_month_until_a_date(raw_conn: connection) -> None:
    dt = first_day_of_next_month()
    monthly = relativedelta(months=1, days=-1)
    until = datetime(dt.year + 2, 1, 1, tzinfo=utc)
    job = Queue(scheduled=True).schedule_call(
        dt, say_hello, args=("groundhog day",), repeat=until, interval=monthly
    )
    assert job.status == JobStatus.SCHEDULED
    assert job.scheduled_for == dt
    assert job.repeat == -1
    assert job.repeat_until == until
    assert row(raw_conn, job, "repeat_interval = '1 mon -1 day'::interval")[0] is True
    assert interval_of(raw_conn, job) == "1 mon -1 days"  # not 29 days
    # The grid: the origin, then the last day of each month (SQL's rule, here from the 1st).
    month_ends = [dt + relativedelta(months=k) - timedelta(days=1) for k in (1, 2, 3)]
    assert grid(raw_conn, job, 3) == month_ends


# Intervals


@pytest.mark.parametrize(
    ("interval", "text"),
    [
        (60, "00:01:00"),
        (1.5, "00:00:01.5"),
        (86400, "1 day"),
        (90000, "1 day 01:00:00"),
        (timedelta(minutes=90), "01:30:00"),
        (timedelta(days=7), "7 days"),
        (relativedelta(months=1), "1 mon"),
        (relativedelta(years=1, months=2), "1 year 2 mons"),
        (relativedelta(weeks=2, hours=3), "14 days 03:00:00"),
        (relativedelta(months=1, days=-1), "1 mon -1 days"),
        (relativedelta(months=1, hours=-2), "1 mon -02:00:00"),
    ],
)
def test_intervals_are_stored_as_postgresql_intervals(
    raw_conn: connection, interval: Any, text: str
) -> None:
    job = Queue().schedule_call(MONDAY, do_nothing, repeat=-1, interval=interval)
    assert interval_of(raw_conn, job) == text


# Time zones


def test_a_naive_datetime_is_read_in_djangos_current_time_zone(raw_conn: connection) -> None:
    with timezone.override("Europe/Paris"):
        job = Queue().schedule(datetime(2030, 6, 1, 9, 0), do_nothing)
    assert job.scheduled_for == datetime(2030, 6, 1, 7, 0, tzinfo=utc)  # CEST, UTC+2
    assert row(raw_conn, job, "time_zone, scheduled_for") == (
        "Europe/Paris",
        datetime(2030, 6, 1, 7, 0, tzinfo=utc),
    )


def test_an_aware_datetime_keeps_its_instant_and_the_zone_is_djangos(raw_conn: connection) -> None:
    tokyo = datetime(2030, 6, 1, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    with timezone.override("Europe/Paris"):
        job = Queue().schedule(tokyo, do_nothing)
    assert job.scheduled_for == datetime(2030, 6, 1, 0, 0, tzinfo=utc)
    assert row(raw_conn, job, "time_zone")[0] == "Europe/Paris"


def test_a_date_is_its_midnight_in_the_current_time_zone(raw_conn: connection) -> None:
    with timezone.override("America/New_York"):
        job = Queue().schedule(date(2030, 1, 7), do_nothing)
    assert job.scheduled_for == datetime(2030, 1, 7, 5, 0, tzinfo=utc)


def test_the_window_and_weekdays_are_read_in_the_current_time_zone(raw_conn: connection) -> None:
    # Monday 18:00 UTC is 19:00 in Paris: out of 2:00-18:30 there, so Tuesday 02:00 Paris.
    with timezone.override("Europe/Paris"):
        job = Queue().schedule_call(
            MONDAY.replace(hour=18), do_nothing, repeat=-1, interval=86400, between="2:00/18:30"
        )
    assert job.scheduled_for == MONDAY + timedelta(days=1, hours=1)
    assert row(raw_conn, job, "time_zone")[0] == "Europe/Paris"


def test_the_time_zone_is_the_settings_default_outside_an_override(raw_conn: connection) -> None:
    job = Queue().schedule(MONDAY, do_nothing)
    assert row(raw_conn, job, "time_zone")[0] == "UTC"


@override_settings(USE_TZ=False)
def test_without_use_tz_naive_datetimes_are_in_time_zone_utc(raw_conn: connection) -> None:
    job = Queue().schedule_call(datetime(2030, 1, 7, 9, 0), do_nothing, repeat=2, interval=3600)
    assert row(raw_conn, job, "scheduled_for, time_zone") == (
        datetime(2030, 1, 7, 9, 0, tzinfo=utc),
        "UTC",
    )
    assert job.scheduled_for == datetime(2030, 1, 7, 9, 0)  # naive, as Django gives it


@override_settings(USE_TZ=False, TIME_ZONE="Europe/Paris")
def test_without_use_tz_naive_datetimes_are_in_the_time_zone_setting(
    raw_conn: connection,
) -> None:
    job = Queue().schedule_call(
        datetime(2030, 1, 7, 9, 0), do_nothing, repeat=-1, interval=86400, between="10-12"
    )
    # 09:00 in Paris (CET, UTC+1) is before the 10:00-12:00 window: 10:00 Paris, 09:00 UTC.
    assert row(raw_conn, job, "scheduled_for, repeat_from, time_zone") == (
        datetime(2030, 1, 7, 9, 0, tzinfo=utc),
        datetime(2030, 1, 7, 9, 0, tzinfo=utc),
        "Europe/Paris",
    )
    assert job.scheduled_for == datetime(2030, 1, 7, 10, 0)  # naive, Paris time


# Bad options: ValueError naming the bad part, nothing stored


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"between": "25:00-3"}, r"between '25:00-3': the start hour 25 is not 0-23"),
        ({"between": "2:00-24:00"}, r"between '2:00-24:00': the end hour 24 is not 0-23"),
        ({"between": "2:60-3"}, r"the start minute 60 is not 0-59"),
        ({"between": "2:00"}, r"between '2:00' is not a window"),
        ({"between": "3-3:00"}, r"between '3-3:00' is empty"),
        ({"between": 3}, r"between must be a string .* got 3"),
        ({"weekdays": (7,)}, r"weekday 7 is not a day"),
        ({"weekdays": (-1,)}, r"weekday -1 is not a day"),
        ({"weekdays": (MO(+1),)}, r"weekday MO\(\+1\) names the nth weekday of a month"),
        ({"weekdays": ("MO",)}, r"weekday 'MO' is not a day"),
        ({"weekdays": ()}, r"weekdays is empty"),
        ({"repeat": -2}, r"repeat must be -1 .*, got -2"),
        ({"repeat": True}, r"repeat must be -1 .*, got True"),
        ({"repeat": 1.5}, r"repeat must be -1 .*, got 1.5"),
        ({"repeat": 3, "interval": 0}, r"pq_schedule: a repeating job needs repeat_interval"),
        ({"repeat": -1, "interval": -60}, r"interval must be at least 1 second"),
        ({"repeat": -1, "interval": timedelta(seconds=-1)}, r"interval must be at least 1 s"),
        ({"repeat": -1, "interval": 0.5}, r"interval must be at least 1 second"),
        ({"repeat": -1, "interval": True}, r"interval must be seconds, a timedelta or a rel"),
        ({"repeat": -1, "interval": "1 day"}, r"interval must be seconds, a timedelta or a rel"),
        ({"repeat": -1, "interval": relativedelta(day=1)}, r"sets absolute fields \(day\)"),
        (
            {"repeat": -1, "interval": relativedelta(months=1, weekday=MO)},
            r"sets absolute fields \(weekday\)",
        ),
        (
            {"repeat": -1, "interval": relativedelta(months=-1)},
            r"pq_schedule: repeat_interval -1 mons must be at least 1 second and move forward",
        ),
        ({"interval": 60}, r"pq_schedule: repeat_interval 00:01:00 is given but repeat is 0"),
        (
            {"repeat": MONDAY - timedelta(days=1), "interval": 60},
            r"pq_schedule: repeat_until .* is before the first run",
        ),
        ({"timeout": 0}, r"pq_schedule: timeout must be a positive number of seconds, got 0"),
    ],
)
def test_bad_options_raise_value_error_and_store_nothing(
    raw_conn: connection, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Queue("fresh").schedule_call(MONDAY, do_nothing, **options)
    assert count(raw_conn) == 0
    assert stored(raw_conn, "SELECT 1 FROM pq_queue WHERE name = 'fresh'") == []


@pytest.mark.parametrize("at", ["now", 1700000000, None])
def test_at_must_be_a_datetime_or_a_date(raw_conn: connection, at: Any) -> None:
    with pytest.raises(ValueError, match=r"at must be a datetime or a date"):
        Queue().schedule(at, do_nothing)
    assert count(raw_conn) == 0


def test_a_synchronous_queue_cannot_schedule(raw_conn: connection) -> None:
    with pytest.raises(ValueError, match=r"is synchronous"):
        Queue(is_async=False).schedule(MONDAY, do_nothing)
    assert count(raw_conn) == 0


def test_schedule_needs_a_function(raw_conn: connection) -> None:
    with pytest.raises(TypeError, match=r"schedule\(\) needs the function to run"):
        Queue().schedule(MONDAY)


def test_scheduling_is_part_of_the_callers_transaction(raw_conn: connection) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        Queue().schedule(MONDAY, do_nothing)
        raise RuntimeError("roll back")
    assert count(raw_conn) == 0


def test_an_instance_method_can_be_scheduled(raw_conn: connection) -> None:
    job = Queue().schedule(MONDAY, jobs.Calculator(2).calculate, 3, 4)
    assert row(raw_conn, job, "func, args, instance IS NOT NULL") == ("calculate", [3, 4], True)


# Named schedules (schedule_call's name)


def test_schedule_call_with_a_name_creates_or_replaces_a_named_schedule(
    raw_conn: connection,
) -> None:
    q = Queue()
    first = q.schedule_call(MONDAY, say_hello, repeat=-1, interval=3600, name="hourly")
    assert first.schedule_name == "hourly"
    second = q.schedule_call(
        MONDAY, say_hello, args=("again",), repeat=-1, interval=7200, name="hourly"
    )
    assert [(job.pk, job.args) for job in pending()] == [(second.pk, ["again"])]
    assert interval_of(raw_conn, second) == "02:00:00"
    assert stored(raw_conn, "SELECT name, next_job_id FROM pq_schedules") == [("hourly", second.pk)]
    assert pq.unschedule("hourly") is True
    assert count(raw_conn) == 0


def test_a_name_needs_a_repeating_job(raw_conn: connection) -> None:
    with pytest.raises(InvalidArgument, match=r"name 'once' is for a repeating job"):
        Queue().schedule_call(MONDAY, say_hello, name="once")
    assert count(raw_conn) == 0


# cron and unschedule


def test_cron_defaults_its_name_to_the_dotted_path(raw_conn: connection) -> None:
    job = Queue("reports").cron("0 3 * * *", say_hello, args=("night",))
    assert job.status == JobStatus.SCHEDULED
    assert job.schedule_name == "tests.jobs.say_hello"
    assert job.cron == "0 3 * * *"
    assert job.repeat == -1
    assert job.queue == "reports"
    assert job.args == ["night"]
    assert job.scheduled_for.time() == time(3, 0)
    assert job.created_at < job.scheduled_for <= job.created_at + timedelta(days=1)
    assert row(raw_conn, job, "time_zone")[0] == "UTC"


def test_cron_again_replaces_the_schedule(raw_conn: connection) -> None:
    q = Queue()
    q.cron("0 3 * * *", say_hello)
    second = q.cron("*/5 * * * *", say_hello, kwargs={"name": "five"})
    assert [(job.pk, job.cron, job.kwargs) for job in pending()] == [
        (second.pk, "*/5 * * * *", {"name": "five"})
    ]
    named = q.cron("0 4 * * *", say_hello, name="other")
    assert named.schedule_name == "other"
    assert len(pending()) == 2


def test_cron_reads_its_fields_in_djangos_current_time_zone(raw_conn: connection) -> None:
    with timezone.override("Asia/Tokyo"):
        job = Queue().cron("0 3 * * *", say_hello)
    assert row(raw_conn, job, "time_zone")[0] == "Asia/Tokyo"
    assert job.scheduled_for.astimezone(utc).time() == time(18, 0)
    explicit = Queue().cron("0 3 * * *", say_hello, name="paris", time_zone="Europe/Paris")
    assert row(raw_conn, explicit, "time_zone")[0] == "Europe/Paris"


def test_unschedule_from_the_queue_and_the_package(raw_conn: connection) -> None:
    q = Queue()
    q.cron("0 3 * * *", say_hello)
    q.cron("0 4 * * *", say_hello, name="keep")
    assert q.unschedule("tests.jobs.say_hello") is True
    assert q.unschedule("tests.jobs.say_hello") is False
    assert pq.unschedule("keep") is True
    assert pq.unschedule("keep") is False
    assert count(raw_conn) == 0


@pytest.mark.parametrize(
    ("expr", "options", "message"),
    [
        ("0 25 * * *", {}, r"^pq_schedule_cron: cron field 2 \(hour\) '25' is out of range 0-23"),
        ("0 3 * *", {}, r"^pq_schedule_cron: cron expression '0 3 \* \*' has 4 fields"),
        ("0 3 * * *", {"time_zone": "Mars/Base"}, r"time zone 'Mars/Base' is not known"),
        ("0 3 * * *", {"name": ""}, r"a schedule name is 1 to 200 characters"),
        ("0 3 * * *", {"timeout": -1}, r"timeout must be a positive number"),
    ],
)
def test_bad_cron_raises_invalid_argument_and_stores_nothing(
    raw_conn: connection, expr: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        Queue().cron(expr, say_hello, **options)
    assert count(raw_conn) == 0


def test_cron_refuses_an_instance_method(raw_conn: connection) -> None:
    with pytest.raises(ValueError, match=r"cron cannot run the instance method calculate"):
        Queue().cron("0 3 * * *", jobs.Calculator(2).calculate)
    assert count(raw_conn) == 0
