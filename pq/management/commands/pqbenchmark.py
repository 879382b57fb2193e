"""manage.py pqbenchmark [num_jobs] [-w WORKERS] [--sleep MS] [--backend pq|rq] [--simple] ..."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pq import benchmark
from pq.management.options import database_alias


class Command(BaseCommand):
    help = (
        "Enqueue pq.utils.do_nothing jobs on the queue 'pqbenchmark' while forked workers "
        "consume them, and report jobs/s (django-pq, or RQ with --backend rq)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "num_jobs", nargs="?", type=int, default=100000, help="jobs to run (100000)"
        )
        parser.add_argument("-w", "--workers", type=int, default=1, help="worker processes (1)")
        parser.add_argument(
            "--sleep", type=float, default=0, help="milliseconds each job sleeps (0)"
        )
        parser.add_argument("--backend", choices=["pq", "rq"], default="pq")
        parser.add_argument(
            "--simple",
            action="store_true",
            help="run jobs in the worker process (pqworker --simple; rq.SimpleWorker)",
        )
        parser.add_argument(
            "--batch",
            type=int,
            default=1,
            help="django-pq with --simple: claim and finish up to N jobs per database call",
        )
        parser.add_argument(
            "--horse-jobs",
            type=int,
            default=1,
            metavar="N",
            help="django-pq forking: each horse runs up to N jobs (pqworker --horse-jobs)",
        )
        parser.add_argument(
            "--redis-url",
            default=benchmark.DEFAULT_REDIS_URL,
            help=f"Redis for --backend rq ({benchmark.DEFAULT_REDIS_URL})",
        )
        parser.add_argument(
            "--connection", default="default", help="database alias (default: default)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        alias = database_alias(options)
        rq = options["backend"] == "rq"
        if rq and options["batch"] != 1:
            raise CommandError("--batch is a django-pq option; RQ's workers take one job a call")
        if rq and options["horse_jobs"] != 1:
            raise CommandError("--horse-jobs is a django-pq option; RQ forks a horse per job")
        if not rq and options["batch"] != 1 and not options["simple"]:
            raise CommandError("--batch needs --simple: forking workers take one job at a time")
        if rq:
            try:
                benchmark.redis_client(options["redis_url"])
            except RuntimeError as exc:
                raise CommandError(str(exc)) from exc
        env = benchmark.environment(alias, options["redis_url"] if rq else None)
        self.stdout.write(benchmark.format_environment(env))
        self.stdout.write(f"note:       {benchmark.LOG_NOTE}")
        try:
            result = self._run(options, alias)
        except (ValueError, RuntimeError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(result.summary())

    def _run(self, options: dict[str, Any], alias: str) -> benchmark.Result:
        last = [0, 0.0]

        def progress(done: int, total: int, seconds: float) -> None:
            rate = (done - last[0]) / max(seconds - last[1], 1e-9)
            last[:] = [done, seconds]
            self.stdout.write(f"{seconds:6.1f} s  {done:>9,}/{total:,} done  {rate:>10,.1f} jobs/s")

        if options["backend"] == "rq":
            return benchmark.run_rq(
                options["num_jobs"],
                options["workers"],
                options["sleep"],
                simple=options["simple"],
                redis_url=options["redis_url"],
                progress=progress,
            )
        return benchmark.run_pq(
            options["num_jobs"],
            options["workers"],
            options["sleep"],
            fork=not options["simple"],
            batch=options["batch"],
            alias=alias,
            progress=progress,
            horse_jobs=options["horse_jobs"],
        )
