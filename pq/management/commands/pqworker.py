"""manage.py pqworker [queue ...] [--burst] [--name] [--connection] [--sentry-dsn] [--terminate]
[--concurrency N] [--simple [--batch N]] [--horse-jobs N]"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from pq import sql
from pq.exceptions import SchemaVersionMismatch, WorkerNameTaken
from pq.management.options import database_alias
from pq.pool import WorkerPool
from pq.worker import Worker


class Command(BaseCommand):
    help = (
        "Work on the given queues, in priority order (all queues but 'failed' when none are "
        "given), forking a work horse for each job."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("queues", nargs="*", help="queue names, highest priority first")
        parser.add_argument("--burst", action="store_true", help="stop when no job is left")
        parser.add_argument("--name", help="worker name (default: hostname.pid); must be unique")
        parser.add_argument(
            "--connection", default="default", help="database alias (default: default)"
        )
        parser.add_argument(
            "--sentry-dsn", help="report job exceptions to Sentry (needs sentry-sdk)"
        )
        parser.add_argument(
            "--simple",
            action="store_true",
            help="run jobs in the worker process instead of a forked horse (trusted, cheap jobs)",
        )
        parser.add_argument(
            "--batch",
            type=int,
            default=1,
            help="with --simple: claim and store up to N jobs per database call (default 1)",
        )
        parser.add_argument(
            "--horse-jobs",
            type=int,
            default=1,
            metavar="N",
            help="let each forked work horse run up to N jobs, one at a time, before it is "
            "replaced (default 1: a fresh horse per job); a job sees what earlier jobs of its "
            "horse left in the process",
        )
        parser.add_argument(
            "--concurrency",
            "-c",
            type=int,
            help="supervise N forking workers: restart one that dies, stop all on SIGTERM",
        )
        parser.add_argument(
            "--terminate",
            action="store_true",
            help="ask every worker to stop after its current job and wait until they have",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        alias = database_alias(options)
        if options["terminate"]:
            self._terminate(alias)
            return
        self._setup_sentry(options["sentry_dsn"])

        def make_worker(name: str | None) -> Worker:
            return Worker(
                options["queues"],
                name=name,
                connection=alias,
                fork=not options["simple"],
                batch=options["batch"],
                horse_jobs=options["horse_jobs"],
            )

        try:
            if options["concurrency"] is not None:
                pool = WorkerPool(
                    options["concurrency"],
                    make_worker,
                    name=options["name"],
                    burst=options["burst"],
                )
                make_worker(pool.name_of(1))  # bad queues or options fail here, not N times
                if pool.run():
                    raise CommandError("a worker of the pool failed; see the log above")
                return
            make_worker(options["name"]).work(burst=options["burst"])
        except (ValueError, WorkerNameTaken, SchemaVersionMismatch) as exc:
            raise CommandError(str(exc)) from exc

    def _terminate(self, alias: str) -> None:
        with connections[alias].cursor() as cursor:
            asked = sql.stop_workers(cursor)
        self.stdout.write(f"Asked {asked} worker(s) to stop; waiting for them")
        while True:
            with connections[alias].cursor() as cursor:
                sql.reap_workers(cursor)  # a dead worker will never stop by itself
                left = sql.worker_count(cursor)
            if not left:
                break
            time.sleep(0.5)
        self.stdout.write("All workers stopped")

    def _setup_sentry(self, dsn: str | None) -> None:
        from django.conf import settings

        dsn = dsn or getattr(settings, "SENTRY_DSN", None)
        if not dsn:
            return
        try:
            import sentry_sdk
        except ImportError as exc:
            raise CommandError(
                "--sentry-dsn needs the sentry-sdk package: pip install sentry-sdk"
            ) from exc
        sentry_sdk.init(dsn=dsn)
