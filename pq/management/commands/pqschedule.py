"""manage.py pqschedule: schedule a function by its dotted path, at a time or on a cron schedule.

    pqschedule now|ISO8601 dotted.func [args ...] [--repeat N|ISO8601 --interval SECONDS]
               [--between 2:00/18:30] [--mo ... --su] [--queue] [--serial] [--time-zone] ...
    pqschedule --cron '0 3 * * *' dotted.func [args ...] [--name] [--queue] [--time-zone] ...
    pqschedule --list
    pqschedule --unschedule NAME

A thin caller: it reads the command line, calls Queue.schedule_call, Queue.cron or
pq.queue.unschedule (or reads the view pq_schedules for --list) and prints what was stored.
The rules (next runs, windows, weekdays, cron) are computed in SQL.
"""

from __future__ import annotations

import argparse
import contextlib
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    DjangoHelpFormatter,
)
from django.db import connections, transaction
from django.utils import timezone

from pq import scheduling, sql
from pq.management.options import database_alias
from pq.models import Job
from pq.queue import Queue, SerialQueue, unschedule
from pq.serialization import callable_path, import_callable

USAGE = """\
%(prog)s now|ISO8601 dotted.func [args ...] [--repeat N|ISO8601 --interval SECONDS]
         [--between H:MM/H:MM] [--mo] [--tu] [--we] [--th] [--fr] [--sa] [--su]
         [--queue Q] [--serial] [--timeout N] [--result-ttl N] [--time-zone ZONE]
         [--connection ALIAS]
       %(prog)s --cron 'MIN HOUR DOM MON DOW' dotted.func [args ...] [--name NAME]
         [--queue Q] [--serial] [--timeout N] [--result-ttl N] [--time-zone ZONE]
         [--connection ALIAS]
       %(prog)s --list [--connection ALIAS]
       %(prog)s --unschedule NAME [--connection ALIAS]"""

EPILOG = """\
examples:
  # now, then every day on Mondays and Tuesdays, for ever
  pqschedule now myapp.tasks.report --repeat=-1 --interval=86400 --mo --tu
  # once, on the first day of 2020 (midnight in the current time zone)
  pqschedule 2020-01-01 myapp.tasks.report
  # at a time, with arguments (passed as strings)
  pqschedule 2020-01-01T9:10 myapp.tasks.report arg1 arg2
  # every night at 3:00 in Paris, as the named schedule 'nightly'
  pqschedule --cron '0 3 * * *' myapp.tasks.report --name nightly --time-zone Europe/Paris"""

WHEN_EXAMPLE = "e.g. 2026-01-01 or 2026-01-01T09:10"
# The seed's '2020-01-01T9:10': a one-digit hour right after the date, which fromisoformat
# refuses; it gets its leading zero.
_ONE_DIGIT_HOUR = re.compile(r"^(\d{4}-?\d{2}-?\d{2}[T ])(\d)(?!\d)")
WEEKDAYS = ("mo", "tu", "we", "th", "fr", "sa", "su")  # 0 (Monday) to 6, as weekdays= takes
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DAY_FULL_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Options of one form only: (dest, as written), to refuse them with the other forms.
TIMED_ONLY = (
    ("repeat", "--repeat"),
    ("interval", "--interval"),
    ("between", "--between"),
    ("weekdays", "--mo ... --su"),
)
JOB_OPTIONS = (
    ("queue", "--queue"),
    ("serial", "--serial"),
    ("timeout", "--timeout"),
    ("result_ttl", "--result-ttl"),
    ("time_zone", "--time-zone"),
    ("name", "--name"),
)


class HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's formatter (its own options last) that keeps the examples' lines."""


class Command(BaseCommand):
    help = (
        "Schedule a function by its dotted path: at a time ('now' or ISO 8601), optionally\n"
        "repeating every --interval seconds within a daily window and on some weekdays; or on\n"
        "a named cron schedule (--cron). --list shows the named schedules, --unschedule\n"
        "removes one."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.usage = USAGE
        parser.epilog = EPILOG
        parser.formatter_class = HelpFormatter
        parser.add_argument(
            "call",
            nargs="*",
            metavar="when func args",
            help="when to run: 'now' or an ISO 8601 date or datetime, naive ones in the "
            "current time zone (leave out with --cron); then the function's dotted path, e.g. "
            "myapp.tasks.send_mail; then its positional arguments (passed as strings)",
        )
        mode = parser.add_argument_group("other forms (one at most)").add_mutually_exclusive_group()
        mode.add_argument(
            "--cron",
            metavar="EXPR",
            help="run at each tick of this five-field cron expression instead "
            "(minute hour day-of-month month day-of-week, e.g. '0 3 * * *')",
        )
        mode.add_argument("--list", action="store_true", help="list the named schedules")
        mode.add_argument("--unschedule", metavar="NAME", help="remove the named schedule")

        repeating = parser.add_argument_group("repeating (not with --cron)")
        repeating.add_argument(
            "--repeat",
            metavar="N|ISO8601",
            help="repeats after the first run: N more runs, -1 for ever, or an ISO 8601 date "
            "or datetime to repeat until; needs --interval",
        )
        repeating.add_argument(
            "--interval", metavar="SECONDS", help="seconds between runs (86400: daily)"
        )
        repeating.add_argument(
            "--between",
            metavar="H:MM/H:MM",
            help="daily window the runs must fall in, e.g. '2:00/18:30' or '22:00-02:00'",
        )
        for number, day in enumerate(WEEKDAYS):
            repeating.add_argument(
                f"--{day}",
                dest="weekdays",
                action="append_const",
                const=number,
                help=f"run on {DAY_FULL_NAMES[number]}s (several days: any of them)",
            )

        job = parser.add_argument_group("job options")
        job.add_argument(
            "--queue", "-q", help="queue name (default: default; serial with --serial)"
        )
        job.add_argument(
            "--serial",
            action="store_true",
            help="make the queue serial (its jobs run one at a time, in order) first",
        )
        job.add_argument("--timeout", "-t", type=int, help="seconds each run may take")
        job.add_argument(
            "--result-ttl", type=int, help="seconds to keep each run's result (-1: forever)"
        )
        job.add_argument(
            "--time-zone",
            metavar="ZONE",
            help="read naive times, --between, weekdays, days and cron fields in this IANA "
            "zone, e.g. Europe/Paris (default: Django's current time zone)",
        )
        job.add_argument(
            "--name", help="with --cron: the schedule's name (default: the function's path)"
        )
        job.add_argument(
            "--connection", default="default", help="database alias (default: default)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"] or options["unschedule"] is not None:
            self._refuse(options, "--list" if options["list"] else "--unschedule", everything=True)
            alias = database_alias(options)
            if options["list"]:
                self._list(alias)
            else:
                self._unschedule(alias, options["unschedule"])
            return
        alias = database_alias(options)
        zone = _zone(options["time_zone"])
        if options["cron"] is not None:
            self._refuse(options, "--cron", everything=False)
            call = options["call"]
            if call and (call[0].strip().lower() == "now" or _iso(call[0]) is not None):
                raise CommandError(
                    f"pqschedule: --cron runs at the ticks of its expression; drop the time "
                    f"{call[0]!r}: pqschedule --cron EXPR dotted.func [args ...]"
                )
            func, job_args = _func_and_args(options["call"], None)
            self._cron(alias, zone, func, job_args, options)
            return
        if options["name"] is not None:
            raise CommandError(
                "pqschedule: --name names a --cron schedule; a job scheduled at a time has no "
                "name (drop --name, or use --cron)"
            )
        with _in_zone(zone):  # naive times, --between and weekdays are read in it
            self._schedule(alias, options)

    def _schedule(self, alias: str, options: dict[str, Any]) -> None:
        """The timed form: ``when func [args]`` with repeat, interval, window and weekdays."""
        call = options["call"]
        if not call:
            raise CommandError(
                "pqschedule: say when and what to run: pqschedule now|ISO8601 dotted.func "
                f"[args ...] ({WHEN_EXAMPLE}), or use --cron, --list or --unschedule NAME"
            )
        at = _when(call[0])
        func, job_args = _func_and_args(call[1:], call[0])
        repeat = _repeat(options["repeat"])
        interval = _interval(options["interval"])
        if repeat != 0 and interval is None:
            raise CommandError(
                f"pqschedule: --repeat {options['repeat']} needs --interval SECONDS, the time "
                "between runs (e.g. --interval 86400 for daily)"
            )
        if interval is not None and repeat == 0:
            raise CommandError(
                f"pqschedule: --interval {options['interval']} without --repeat would run the "
                "job once; add --repeat N (N more runs), --repeat -1 (for ever) or "
                "--repeat ISO8601 (until then)"
            )
        between = options["between"]
        if between is not None:
            try:
                scheduling.parse_between(between)  # to name the option in the error
            except ValueError as exc:
                message = str(exc)  # "between '2-25': the end hour 25 is not 0-23"
                if not message.startswith("between "):
                    message = f"between {between!r}: {message}"
                raise CommandError(f"pqschedule: --{message}") from exc
        with _api_errors(), transaction.atomic(using=alias):  # --serial too, or nothing
            job = _queue(alias, options).schedule_call(
                at,
                func,
                args=job_args,
                timeout=options["timeout"],
                result_ttl=options["result_ttl"],
                repeat=repeat,
                interval=interval or 0,
                between=between,
                weekdays=options["weekdays"],
            )
        self.stdout.write(
            f"Scheduled job {job.pk} {job.get_description()} on {job.queue} for "
            f"{_shown(job.scheduled_for, job.time_zone)} ({job.time_zone}), {_repetition(job)}"
        )

    def _cron(
        self,
        alias: str,
        zone: tzinfo | None,
        func: str,
        job_args: list[str],
        options: dict[str, Any],
    ) -> None:
        """The cron form: create or replace a named schedule."""
        with _api_errors(), transaction.atomic(using=alias):
            job = _queue(alias, options).cron(
                options["cron"],
                func,
                name=options["name"],
                args=job_args,
                time_zone=None if zone is None else scheduling.zone_name(zone),
                timeout=options["timeout"],
                result_ttl=options["result_ttl"],
            )
        self.stdout.write(
            f"Scheduled {job.schedule_name!r}: {job.get_description()} on {job.queue} at "
            f"'{job.cron}' ({job.time_zone}); next run "
            f"{_shown(job.scheduled_for, job.time_zone)} (job {job.pk})"
        )

    def _list(self, alias: str) -> None:
        """Print the view pq_schedules as a table."""
        with connections[alias].cursor() as cursor:
            rows = sql.schedules(cursor)
        if not rows:
            self.stdout.write(
                "No named schedules (create one with: pqschedule --cron EXPR dotted.func)"
            )
            return
        table = [("NAME", "SCHEDULE", "ZONE", "QUEUE", "FUNC", "NEXT RUN", "LAST JOB")]
        for row in rows:
            last = (
                "-" if row["last_job_id"] is None else f"{row['last_job_id']} {row['last_status']}"
            )
            table.append(
                (
                    row["name"],
                    row["schedule"] or "",
                    row["time_zone"] or "",
                    row["queue"],
                    row["func"],
                    f"{_shown(row['next_run'], row['time_zone'])} (job {row['next_job_id']})",
                    last,
                )
            )
        widths = [max(len(str(line[column])) for line in table) for column in range(7)]
        for line in table:
            cells = [str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)]
            self.stdout.write("  ".join(cells).rstrip())

    def _unschedule(self, alias: str, name: str) -> None:
        if not unschedule(name, connection=alias):
            raise CommandError(
                f"pqschedule: there is no schedule named {name!r}; pqschedule --list shows "
                "the named schedules"
            )
        self.stdout.write(f"Unscheduled {name!r}")

    @staticmethod
    def _refuse(options: dict[str, Any], mode: str, *, everything: bool) -> None:
        """Raise CommandError for arguments ``mode`` does not take.

        ``everything``: the mode takes nothing but --connection (--list, --unschedule);
        else (--cron) it takes a call and job options but not the timed form's options.
        """
        if everything and options["call"]:
            raise CommandError(
                f"pqschedule: {mode} takes no function or time, got {' '.join(options['call'])!r}"
            )
        given = [
            written
            for dest, written in TIMED_ONLY + (JOB_OPTIONS if everything else ())
            if options[dest] not in (None, False)
        ]
        if given:
            what = "takes no job options" if everything else "schedules by the cron expression"
            raise CommandError(
                f"pqschedule: {mode} {what}; drop {', '.join(given)}"
                + ("" if everything else " (or schedule at a time instead of --cron)")
            )


def _when(text: str) -> datetime | date:
    """Read ``when``: 'now', an ISO 8601 date (its midnight) or datetime (naive: current zone)."""
    if text.strip().lower() == "now":
        return timezone.now()
    found = _iso(text)
    if found is None:
        raise CommandError(
            f"pqschedule: {text!r} is not 'now' or an ISO 8601 date or datetime "
            f"({WHEN_EXAMPLE}); write when to run first: pqschedule now|ISO8601 dotted.func"
        )
    return found


def _iso(text: str) -> datetime | date | None:
    """Return the ISO 8601 date or datetime ``text``, or None if it is neither."""
    value = _ONE_DIGIT_HOUR.sub(r"\g<1>0\g<2>", text.strip())
    for parse in (date.fromisoformat, datetime.fromisoformat):
        try:
            return parse(value)
        except ValueError:
            pass
    return None


def _func_and_args(call: list[str], when: str | None) -> tuple[str, list[str]]:
    """Return the function's path and its arguments, after importing it (as a worker will:
    a typo fails now, not at the first run)."""
    if not call:
        raise CommandError(
            f"pqschedule: which function to run{'' if when is None else ' ' + repr(when)}? "
            f"write pqschedule {'--cron EXPR' if when is None else when} dotted.func [args ...]"
        )
    func = call[0]
    try:
        callable_path(func)  # the dotted path's form first, then its import
        import_callable(func)
    except Exception as exc:
        raise CommandError(
            f"pqschedule: cannot schedule {func} ({type(exc).__name__}: {exc}); a worker "
            "would fail the job the same way: check the path, and that this project's "
            "settings can import it"
        ) from exc
    return func, list(call[1:])


def _repeat(text: str | None) -> int | datetime | date:
    """Read --repeat: a count (-1: for ever) or an ISO 8601 date or datetime to repeat until."""
    if text is None:
        return 0
    try:
        count = int(text)
    except ValueError:
        until = _iso(text)
        if until is None:
            raise CommandError(
                f"pqschedule: --repeat {text!r} is neither a number of repeats (-1: for ever) "
                f"nor an ISO 8601 date or datetime to repeat until (e.g. --repeat 10 or "
                "--repeat 2026-12-31)"
            ) from None
        return until
    if count < -1:
        raise CommandError(
            f"pqschedule: --repeat {count} is not a number of repeats; use N >= 0 (N more runs "
            "after the first) or -1 (for ever)"
        )
    return count


def _interval(text: str | None) -> int | float | None:
    """Read --interval: seconds, at least 1."""
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds >= 1 or seconds == float("inf"):  # also NaN
        raise CommandError(
            f"pqschedule: --interval {text!r} is not a time between runs; give a number of "
            "seconds of at least 1 (e.g. --interval 3600 for hourly, 86400 for daily)"
        )
    return int(seconds) if seconds.is_integer() else seconds


def _zone(name: str | None) -> tzinfo | None:
    """Read --time-zone: an IANA zone name, or None for Django's current time zone."""
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CommandError(
            f"pqschedule: --time-zone {name!r} is not a time zone; use an IANA name such as "
            "Europe/Paris, America/New_York or UTC"
        ) from None


@contextlib.contextmanager
def _in_zone(zone: tzinfo | None) -> Iterator[None]:
    if zone is None:
        yield
    else:
        with timezone.override(zone):
            yield


@contextlib.contextmanager
def _api_errors() -> Iterator[None]:
    """Turn the Queue API's errors (pq's InvalidArgument is a ValueError) into CommandError."""
    try:
        yield
    except (ValueError, TypeError, ImportError) as exc:
        raise CommandError(f"pqschedule: {exc}") from exc


def _queue(alias: str, options: dict[str, Any]) -> Queue:
    """The queue to schedule on: --serial makes it serial first (its default name: serial)."""
    if options["serial"]:
        return SerialQueue(options["queue"] or "serial", connection=alias)
    return Queue(options["queue"] or "default", connection=alias)


def _shown(instant: datetime | None, zone: str | None) -> str:
    """``instant`` as the clocks of ``zone`` show it, to the second."""
    if instant is None:
        return "-"
    if timezone.is_naive(instant):  # USE_TZ = False: Django's naive times are in TIME_ZONE
        instant = timezone.make_aware(instant, timezone.get_default_timezone())
    try:
        local = instant.astimezone(ZoneInfo(zone)) if zone else instant
    except (ZoneInfoNotFoundError, ValueError):  # a zone PostgreSQL knows but Python does not
        local = instant
    return local.isoformat(sep=" ", timespec="seconds")


def _repetition(job: Job) -> str:
    """How the job repeats, e.g. 'then every 1 day for ever, between 02:00 and 18:30'."""
    if job.repeat == 0 and job.repeat_until is None:
        text = "once"
    else:
        text = f"then every {_duration(job.repeat_interval)}"
        if job.repeat_until is not None:
            text += f" until {_shown(job.repeat_until, job.time_zone)}"
        elif job.repeat == -1:
            text += " for ever"
        else:
            text += f", {job.repeat} more time{'s' if job.repeat != 1 else ''}"
    if job.between_start is not None:
        text += f", between {job.between_start:%H:%M} and {job.between_end:%H:%M}"
    if job.weekdays:
        text += f", on {', '.join(DAY_NAMES[day] for day in job.weekdays)}"
    return text


def _duration(interval: timedelta | None) -> str:
    """``interval`` in words: '1 day', '1 hour 30 minutes', '1 minute 30.5 seconds'."""
    if interval is None:
        return "?"
    days, rest = interval.days, interval.seconds + interval.microseconds / 1_000_000
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = []
    for amount, unit in ((days, "day"), (hours, "hour"), (minutes, "minute"), (seconds, "second")):
        if amount:
            shown = f"{amount:g}" if isinstance(amount, float) else str(amount)
            parts.append(f"{shown} {unit}{'' if amount == 1 else 's'}")
    return " ".join(parts) or "0 seconds"
