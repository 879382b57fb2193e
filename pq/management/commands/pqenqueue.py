"""manage.py pqenqueue dotted.func [arg ...] [--queue] [--serial] [--timeout] [--priority]
[--retry [--retry-interval]] [--sync]"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pq.management.options import add_priority_and_retry, priority_and_retry
from pq.queue import Queue, SerialQueue
from pq.serialization import callable_path, import_callable


class Command(BaseCommand):
    help = "Enqueue a function by its dotted path with string arguments, e.g. pq.utils.test_job."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("func", help="dotted path of the function, e.g. myapp.tasks.send_mail")
        parser.add_argument(
            "job_args", metavar="args", nargs="*", help="positional arguments (passed as strings)"
        )
        parser.add_argument(
            "--queue", "-q", default="default", help="queue name (default: default)"
        )
        parser.add_argument(
            "--serial",
            action="store_true",
            help="make the queue serial (its jobs run one at a time, in order) first",
        )
        parser.add_argument("--timeout", "-t", type=int, help="seconds the job may run")
        parser.add_argument(
            "--result-ttl", type=int, help="seconds to keep the result (-1: forever)"
        )
        add_priority_and_retry(parser)
        parser.add_argument("--connection", default="default", help="database alias")
        parser.add_argument("--sync", action="store_true", help="run the job here and now instead")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            callable_path(options["func"])  # the dotted path's form first, then its import
            import_callable(options["func"])
        except Exception as exc:
            raise CommandError(
                f"cannot enqueue {options['func']} ({type(exc).__name__}: {exc}); a worker "
                "would fail the job the same way: check the path, and that this project's "
                "settings can import it"
            ) from exc
        job_options = priority_and_retry(options)
        try:
            queue_class = SerialQueue if options["serial"] else Queue
            queue = queue_class(
                options["queue"], connection=options["connection"], is_async=not options["sync"]
            )
            job = queue.enqueue_call(
                options["func"],
                args=options["job_args"],
                timeout=options["timeout"],
                result_ttl=options["result_ttl"],
                **job_options,
            )
        except (ValueError, TypeError, ImportError) as exc:
            raise CommandError(str(exc)) from exc
        if options["sync"]:
            self.stdout.write(f"Job result = {job.result!r}")
        else:
            self.stdout.write(f"Enqueued job {job.pk} {job.get_description()} on {queue.name}")
