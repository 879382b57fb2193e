"""manage.py pqinfo: the queues, workers and named schedules at a glance, like ``rq info``.

A thin caller: pq.sql counts the jobs of every queue in one query over pq_job's partial
indexes, lists the workers with their started jobs, and reads the view pq_schedules; this
prints them as tables, or as one JSON object per report (--json), once or every --interval.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from pq import sql
from pq.management.options import database_alias

COUNTS = ("queued", "scheduled", "due", "started", "failed")
UNDEFINED_TABLE = "42P01"
CLEAR_SCREEN = "\033[H\033[2J"


class Command(BaseCommand):
    help = (
        "Show each queue's job counts (queued, scheduled and due now, started, failed by the "
        "queue they came from), the workers with their heartbeat and current jobs, and the "
        "named schedules."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--interval",
            "-i",
            type=float,
            metavar="SECONDS",
            help="show it again every SECONDS seconds until Ctrl-C",
        )
        parser.add_argument(
            "--json", action="store_true", help="print one JSON object per report, for scripts"
        )
        parser.add_argument(
            "--queue",
            "-q",
            dest="queues",
            action="append",
            metavar="QUEUE",
            help="only this queue, and the workers serving it (repeat for several)",
        )
        parser.add_argument(
            "--connection", default="default", help="database alias (default: default)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        interval = options["interval"]
        if interval is not None and not interval > 0:
            raise CommandError(f"--interval must be a positive number of seconds, got {interval}")
        alias = database_alias(options)
        show = self._write_json if options["json"] else self._write_tables
        try:
            while True:
                show(_report(alias, options["queues"]))
                self.stdout.flush()
                if interval is None:
                    return
                time.sleep(interval)
                if self.stdout.isatty():
                    self.stdout.write(CLEAR_SCREEN, ending="")
                elif not options["json"]:
                    self.stdout.write("")
        except KeyboardInterrupt:
            return

    def _write_json(self, report: dict[str, Any]) -> None:
        self.stdout.write(json.dumps(report, cls=DjangoJSONEncoder))

    def _write_tables(self, report: dict[str, Any]) -> None:
        queues, workers = report["queues"], report["workers"]
        self.stdout.write(f"pq info at {_shown(report['generated_at'])}")
        self.stdout.write("")
        if queues:
            header = ("QUEUE", "SERIAL", *(count.upper() for count in COUNTS))
            rows = [
                (q["name"], "yes" if q["serial"] else "no", *(str(q[c]) for c in COUNTS))
                for q in queues
            ]
            totals = ("TOTAL", "", *(str(sum(q[c] for q in queues)) for c in COUNTS))
            self._table([header, *rows, totals], numeric_from=2)
        else:
            self.stdout.write("No queues")
        self.stdout.write("")
        if workers:
            self._table(
                [
                    ("WORKER", "HOST", "PID", "QUEUES", "HEARTBEAT", "EXPIRED", "STOP", "JOBS"),
                    *(_worker_cells(w) for w in workers),
                ]
            )
        expired = sum(w["expired"] for w in workers)
        self.stdout.write(
            f"{len(queues)} queue(s), {len(workers)} worker(s)"
            + (f" ({expired} expired)" if expired else "")
        )
        self.stdout.write("")
        if report["schedules"]:
            self._table(
                [
                    ("SCHEDULE", "EVERY", "ZONE", "QUEUE", "FUNC", "NEXT RUN", "LAST JOB"),
                    *(_schedule_cells(s) for s in report["schedules"]),
                ]
            )
        else:
            self.stdout.write("No named schedules")

    def _table(self, lines: Sequence[Sequence[str]], numeric_from: int | None = None) -> None:
        """Write ``lines`` in aligned columns; columns from ``numeric_from`` on to the right."""
        widths = [max(map(len, column)) for column in zip(*lines, strict=True)]
        for line in lines:
            cells = (
                cell.rjust(width)
                if numeric_from is not None and index >= numeric_from
                else cell.ljust(width)
                for index, (cell, width) in enumerate(zip(line, widths, strict=True))
            )
            self.stdout.write("  ".join(cells).rstrip())


def _report(alias: str, queues: Sequence[str] | None) -> dict[str, Any]:
    """Read the queues, workers and schedules (``queues``: only those); CommandError, saying
    to migrate, when the database lacks django-pq's tables."""
    try:
        with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
            queue_rows = sql.queue_counts(cursor, queues)
            workers = sql.worker_states(cursor, queues)
            schedules = sql.schedules(cursor)
    except DatabaseError as exc:
        pg_error = exc if getattr(exc, "pgcode", None) else exc.__cause__
        code = getattr(pg_error, "pgcode", None) or getattr(pg_error, "sqlstate", None)
        if code != UNDEFINED_TABLE:
            raise
        database = connections[alias].settings_dict.get("NAME")
        raise CommandError(
            f"database {alias!r} ({database}) has no django-pq tables: "
            "run `python manage.py migrate pq` first"
        ) from exc
    if queues is not None:
        schedules = [s for s in schedules if s["queue"] in queues]
    return {
        "generated_at": timezone.now(),
        "queues": queue_rows,
        "workers": workers,
        "schedules": schedules,
    }


def _worker_cells(worker: dict[str, Any]) -> tuple[str, ...]:
    jobs = ", ".join(f"{job['id']} {job['func']}" for job in worker["jobs"])
    return (
        worker["name"],
        worker["hostname"] or "-",
        "-" if worker["pid"] is None else str(worker["pid"]),
        ",".join(worker["queues"]) or "(all)",
        f"{worker['heartbeat_age']:.0f} s ago",
        "EXPIRED" if worker["expired"] else "no",
        "yes" if worker["stop"] else "no",
        jobs or "-",
    )


def _schedule_cells(schedule: dict[str, Any]) -> tuple[str, ...]:
    last = schedule["last_job_id"]
    return (
        schedule["name"],
        schedule["schedule"] or "",
        schedule["time_zone"] or "",
        schedule["queue"],
        schedule["func"],
        f"{_shown(schedule['next_run'])} (job {schedule['next_job_id']})",
        "-" if last is None else f"{last} {schedule['last_status']}",
    )


def _shown(instant: datetime | None) -> str:
    """``instant`` in Django's current time zone, to the second."""
    if instant is None:
        return "-"
    if timezone.is_aware(instant):
        instant = timezone.localtime(instant)
    return instant.isoformat(sep=" ", timespec="seconds")
