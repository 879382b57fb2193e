"""manage.py pqschedule: schedule a function by its dotted path, at a time or on a cron schedule.

A thin caller: pq.management.schedule_args reads the command line; Queue.schedule_call,
Queue.cron and pq.queue.unschedule store (or the view pq_schedules lists); this prints what
was stored. The rules (next runs, windows, weekdays, cron) are computed in SQL.
"""

from __future__ import annotations

import argparse
import contextlib
from datetime import datetime, timedelta
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

from pq import sql
from pq.management import schedule_args
from pq.management.options import add_priority_and_retry, database_alias
from pq.models import Job
from pq.queue import Queue, SerialQueue, unschedule

USAGE = """\
%(prog)s now|ISO8601 dotted.func [args ...] [--repeat N|ISO8601 --interval SECONDS]
         [--between H:MM/H:MM] [--mo] [--tu] [--we] [--th] [--fr] [--sa] [--su]
         [--name NAME] [job options]
       %(prog)s --cron 'MIN HOUR DOM MON DOW' dotted.func [args ...]
         [--name NAME] [job options]
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
  # every hour from now, as the named schedule 'hourly' (run again to replace it)
  pqschedule now myapp.tasks.report --repeat=-1 --interval=3600 --name hourly
  # every night at 3:00 in Paris, as the named schedule 'nightly'
  pqschedule --cron '0 3 * * *' myapp.tasks.report --name nightly --time-zone Europe/Paris"""

# --mo ... --su give weekdays= its days, 0 (Monday) to 6.
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


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
                f"--{day[:2].lower()}",
                dest="weekdays",
                action="append_const",
                const=number,
                help=f"run on {day}s (several days: any of them)",
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
        add_priority_and_retry(job)
        job.add_argument(
            "--time-zone",
            metavar="ZONE",
            help="read naive times, --between, weekdays, days and cron fields in this IANA "
            "zone, e.g. Europe/Paris (default: Django's current time zone)",
        )
        job.add_argument(
            "--name",
            help="the schedule's name, to replace it by running again, see it in --list and "
            "remove it with --unschedule: a repeating job's, or --cron's (default there: the "
            "function's path)",
        )
        job.add_argument(
            "--connection", default="default", help="database alias (default: default)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"] or options["unschedule"] is not None:
            schedule_args.refuse(options, "--list" if options["list"] else "--unschedule")
            alias = database_alias(options)
            if options["list"]:
                self._list(alias)
            else:
                self._unschedule(alias, options["unschedule"])
            return
        alias = database_alias(options)
        zone = schedule_args.zone(options["time_zone"])
        cron = options["cron"] is not None
        # Naive times, --between, weekdays and cron fields are read in the current time zone.
        with contextlib.nullcontext() if zone is None else timezone.override(zone):
            call = schedule_args.cron(options) if cron else schedule_args.timed(options)
            try:
                with transaction.atomic(using=alias):  # --serial too, or nothing
                    queue = _queue(alias, options)
                    job = queue.cron(**call) if cron else queue.schedule_call(**call)
            except ValueError as exc:  # the Queue API's, and SQL's as pq's InvalidArgument
                raise CommandError(f"pqschedule: {exc}") from exc
        self.stdout.write(_cron_line(job) if cron else _timed_line(job))

    def _list(self, alias: str) -> None:
        """Print the view pq_schedules as a table."""
        with connections[alias].cursor() as cursor:
            rows = sql.schedules(cursor)
        if not rows:
            self.stdout.write(
                "No named schedules (create one: --cron EXPR, or --name NAME on a repeating job)"
            )
            return
        table = [
            (
                "NAME",
                "SCHEDULE",
                "ZONE",
                "QUEUE",
                "FUNC",
                "NEXT RUN",
                "LAST JOB",
                "PRIORITY",
                "RETRIES",
            )
        ]
        table += [
            (
                row["name"],
                row["schedule"] or "",
                row["time_zone"] or "",
                row["queue"],
                row["func"],
                f"{_shown(row['next_run'], row['time_zone'])} (job {row['next_job_id']})",
                "-" if row["last_job_id"] is None else f"{row['last_job_id']} {row['last_status']}",
                str(row["priority"]),
                _retries(row["max_retries"], row["retry_intervals"]),
            )
            for row in rows
        ]
        widths = [max(map(len, column)) for column in zip(*table, strict=True)]
        for line in table:
            cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
            self.stdout.write("  ".join(cells).rstrip())

    def _unschedule(self, alias: str, name: str) -> None:
        if not unschedule(name, connection=alias):
            raise CommandError(
                f"pqschedule: there is no schedule named {name!r}; pqschedule --list shows "
                "the named schedules"
            )
        self.stdout.write(f"Unscheduled {name!r}")


def _queue(alias: str, options: dict[str, Any]) -> Queue:
    """The queue to schedule on: --serial makes it serial first (its default name: serial)."""
    if options["serial"]:
        return SerialQueue(options["queue"] or "serial", connection=alias)
    return Queue(options["queue"] or "default", connection=alias)


def _timed_line(job: Job) -> str:
    named = f"{job.schedule_name!r}: job" if job.schedule_name else "job"
    return (
        f"Scheduled {named} {job.pk} {job.get_description()} on {job.queue} for "
        f"{_shown(job.scheduled_for, job.time_zone)} ({job.time_zone}), {_repetition(job)}"
    )


def _cron_line(job: Job) -> str:
    return (
        f"Scheduled {job.schedule_name!r}: {job.get_description()} on {job.queue} at "
        f"'{job.cron}' ({job.time_zone}); next run "
        f"{_shown(job.scheduled_for, job.time_zone)} (job {job.pk})"
    )


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
        text += f", on {', '.join(WEEKDAYS[day][:3] for day in job.weekdays)}"
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


def _retries(max_retries: int, intervals: list[int] | None) -> str:
    """A schedule's retries for --list: "-", or "3 (10, 60 s)" (the last interval repeats)."""
    if not max_retries:
        return "-"
    if not intervals:
        return f"{max_retries} (at once)"
    return f"{max_retries} ({', '.join(map(str, intervals))} s)"
