"""The admin's changelist pages at 1,000 and 1,000,000 jobs: does a page stay fast?

``python bench/admin_changelist.py`` starts a throwaway PostgreSQL cluster with PostgreSQL's
durable defaults (``pq.testing.TemporaryPostgres()``: fsync, synchronous_commit and
full_page_writes on), configures Django standalone with the admin, migrates, and for each
``--jobs`` count (default 1,000 then 1,000,000):

- empties pq_job and fills it in bulk (``INSERT ... SELECT generate_series``) with a mix
  like a busy site's: the newest 5 % of the jobs pending (queued, scheduled, deferred, 20
  started on 4 registered workers), the older 95 % finished with 5 % of them failed;
  10 queues, 8 functions, ``enqueued_at`` spread evenly over the last 365 days in id order;
- runs ``VACUUM ANALYZE pq_job``;
- GETs each changelist with Django's test Client as a superuser: the job lists (queued,
  scheduled, started, finished, failed, dequeued), queues and workers, a queue filter, a
  search, a date-hierarchy drill-down and a deep page: one untimed warm-up, then ``--runs``
  timed GETs (the median and the max are printed), counting the SQL queries of a page and
  timing each one (``connection.execute_wrapper``): a query slower than 100 ms is printed
  with its text.

``--index "CREATE INDEX ..."`` (repeatable) measures every page once more after creating
the index, to compare a candidate index before and after. ``--explain`` prints
``EXPLAIN (ANALYZE, BUFFERS)`` of each slow query. The machine, the versions and the
PostgreSQL settings are printed first, as ``python -m bench`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import statistics
import sys
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: python bench/admin_changelist.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SLOW_QUERY_MS = 100.0
SLOW_PAGE_MS = 300.0
DEFAULT_JOBS = (1_000, 1_000_000)
QUEUES = ("default",) * 4 + ("high",) * 2 + ("low", "emails", "reports", "webhooks")
FUNCS = (
    "app.tasks.send_mail",
    "app.tasks.resize_image",
    "app.tasks.sync_account",
    "app.tasks.charge_card",
    "app.tasks.build_report",
    "app.tasks.deliver_webhook",
    "app.tasks.cleanup",
    "app.tasks.index_document",
)
WORKERS = 4
STARTED = 20
USERNAME = "bench-admin"

# One row per n in 1..N: the newest 5 % pending, the older ones done (1 in 20 failed).
FILL = """
INSERT INTO pq_job (queue, origin, status, func, args, kwargs, description, result, exc_info,
                    created_at, enqueued_at, scheduled_for, depends_on, worker, started_at,
                    ended_at, result_ttl)
SELECT CASE WHEN s.status = 'failed' THEN 'failed' ELSE s.queue END, s.queue, s.status, s.func,
       jsonb_build_array(s.n, 'user-' || s.n %% 977), '{"retry": false}'::jsonb,
       s.func || '(' || s.n || ')',
       CASE WHEN s.status = 'finished' THEN jsonb_build_object('ok', true, 'n', s.n) END,
       CASE WHEN s.status = 'failed' THEN
            'Traceback (most recent call last):' || chr(10) || '  File "app/tasks.py", line '
            || s.n %% 300 || ', in ' || s.func || chr(10) || 'ValueError: bad input ' || s.n END,
       s.at, s.at,
       CASE WHEN s.status = 'scheduled' THEN now() + (s.n %% 10080) * interval '1 minute' END,
       CASE WHEN s.status = 'deferred' THEN s.n - 1 END,
       CASE WHEN s.status = 'started' THEN 'bench-worker-' || s.n %% %(workers)s END,
       CASE WHEN s.status IN ('started', 'finished', 'failed') THEN s.at + interval '1 second' END,
       CASE WHEN s.status IN ('finished', 'failed') THEN s.at + interval '3 seconds' END,
       -1
  FROM (SELECT g.n,
               (%(queues)s::text[])[1 + (g.n * 7 + g.n / 20) %% %(nqueues)s] AS queue,
               (%(funcs)s::text[])[1 + (g.n / 3) %% %(nfuncs)s] AS func,
               now() - (%(jobs)s - g.n)::float8 / %(jobs)s * interval '365 days' AS at,
               CASE WHEN g.n <= %(done)s THEN
                         CASE WHEN g.n %% 20 = 0 THEN 'failed' ELSE 'finished' END
                    WHEN g.n <= %(done)s + %(started)s THEN 'started'
                    WHEN g.n %% 10 = 0 THEN 'scheduled'
                    WHEN g.n %% 50 = 1 THEN 'deferred'
                    ELSE 'queued' END AS status
          FROM generate_series(%(first)s, %(last)s) AS g (n)) AS s
"""
CHUNK = 250_000
FLOWS = """
INSERT INTO pq_flow (name, queue, status, jobs, created_at, ended_at)
SELECT 'bench-flow-' || g %% 50, 'default',
       CASE WHEN (3 * g - 2) %% 20 = 0 OR (3 * g - 1) %% 20 = 0 OR (3 * g) %% 20 = 0
            THEN 'failed' ELSE 'finished' END,
       ARRAY[3 * g - 2, 3 * g - 1, 3 * g]::bigint[], now() - interval '365 days', now()
  FROM generate_series(1, %(flows)s) AS g;
UPDATE pq_job SET flow_id = (id + 2) / 3 WHERE id <= 3 * %(flows)s;
"""
SCHEDULES = """
UPDATE pq_job SET schedule_name = 'bench-schedule-' || id %% 50, repeat = -1,
                  repeat_interval = interval '1 hour', time_zone = 'UTC'
 WHERE id IN (SELECT min(id) FROM pq_job WHERE status = 'scheduled' GROUP BY id %% 50);
UPDATE pq_job SET schedule_name = 'bench-schedule-' || (id / 1000) %% 50
 WHERE status = 'finished' AND id %% 1000 = 1;
"""


@dataclass
class Page:
    """One changelist GET: what it is called in the table, its URL name and query string."""

    label: str
    url_name: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class Measured:
    """The timings of one page at one size."""

    page: Page
    jobs: int
    times_ms: list[float]
    queries: int
    rows_shown: int
    slow: dict[str, float]  # SQL text -> slowest time (ms) over the timed runs

    @property
    def median(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def max(self) -> float:
        return max(self.times_ms)


def pages(year: int, jobs: int) -> list[Page]:
    deep = "50" if jobs >= 100_000 else "5"  # a page well past the first
    return [
        Page("queued", "admin:pq_queuedjob_changelist"),
        Page("scheduled", "admin:pq_scheduledjob_changelist"),
        Page("started", "admin:pq_startedjob_changelist"),
        Page("finished", "admin:pq_finishedjob_changelist"),
        Page("failed", "admin:pq_failedjob_changelist"),
        Page("dequeued (all jobs run)", "admin:pq_dequeuedjob_changelist"),
        Page("queues", "admin:pq_queuestore_changelist"),
        Page("workers", "admin:pq_workerstore_changelist"),
        Page("flows", "admin:pq_flowstore_changelist"),
        Page("flows ?status=failed", "admin:pq_flowstore_changelist", {"status": "failed"}),
        Page("cron schedules", "admin:pq_schedule_changelist"),
        Page("queued ?queue=emails", "admin:pq_queuedjob_changelist", {"queue": "emails"}),
        Page("finished ?queue=emails", "admin:pq_finishedjob_changelist", {"queue": "emails"}),
        Page("failed ?origin=emails", "admin:pq_failedjob_changelist", {"origin": "emails"}),
        Page("finished ?q=charge_card", "admin:pq_finishedjob_changelist", {"q": "charge_card"}),
        Page("finished ?q=no_such_func", "admin:pq_finishedjob_changelist", {"q": "no_such"}),
        Page(
            f"finished ?enqueued_at__year={year}",
            "admin:pq_finishedjob_changelist",
            {"enqueued_at__year": str(year)},
        ),
        Page(
            f"dequeued ?enqueued_at__year={year}&month=1",
            "admin:pq_dequeuedjob_changelist",
            {"enqueued_at__year": str(year), "enqueued_at__month": "1"},
        ),
        Page("finished, deep page (?p=5, ?p=50)", "admin:pq_finishedjob_changelist", {"p": deep}),
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/admin_changelist.py",
        description="Time the admin's changelist pages on a throwaway PostgreSQL.",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        nargs="+",
        default=list(DEFAULT_JOBS),
        help="job counts to measure, in order (default: 1000 1000000)",
    )
    parser.add_argument("--runs", type=int, default=5, help="timed GETs per page (default 5)")
    parser.add_argument(
        "--index",
        action="append",
        default=[],
        metavar="SQL",
        help="a CREATE INDEX to try: every page is measured again after it (repeatable)",
    )
    parser.add_argument(
        "--explain", action="store_true", help="print EXPLAIN ANALYZE of each slow query"
    )
    parser.add_argument(
        "--dsn",
        help="an existing database to use instead of a throwaway cluster: its pq_job is"
        " EMPTIED and refilled (migrated first)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --dsn: keep pq_job when it already holds exactly the --jobs count",
    )
    return parser.parse_args(argv)


def configure(dsn: str) -> None:
    """Configure Django standalone with the admin and its URLs (this module's), and migrate."""
    import django
    from django.conf import settings

    from pq.testing import dsn_to_django

    urls = types.ModuleType("bench_admin_urls")
    settings.configure(
        DEBUG=False,
        SECRET_KEY="django-pq-bench-not-secret",
        ALLOWED_HOSTS=["testserver"],
        USE_TZ=True,
        TIME_ZONE="UTC",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        DATABASES={"default": dsn_to_django(dsn)},
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.admin",
            "django.contrib.sessions",
            "django.contrib.messages",
            "pq",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ],
                },
            },
        ],
        ROOT_URLCONF=urls,
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        LOGGING={"version": 1, "loggers": {"pq": {"level": "WARNING"}}},
    )
    django.setup()
    from django.contrib import admin
    from django.urls import path

    urls.urlpatterns = [path("admin/", admin.site.urls)]  # type: ignore[attr-defined]
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def fill(jobs: int) -> float:
    """Empty pq_job, insert ``jobs`` rows and VACUUM ANALYZE; return the seconds it took."""
    from django.db import connection

    start = time.perf_counter()
    done = jobs - jobs * 5 // 100
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE pq_job, pq_flow RESTART IDENTITY")
        cursor.execute("DELETE FROM pq_worker WHERE name LIKE 'bench-worker-%%'")
        for number in range(WORKERS):
            cursor.execute(
                "SELECT pq_register_worker(%s, NULL, 3600, 'bench.example', %s)",
                [f"bench-worker-{number}", 1000 + number],
            )
        cursor.execute(
            "INSERT INTO pq_queue (name) SELECT DISTINCT unnest(%s::text[]) ON CONFLICT DO NOTHING",
            [list(QUEUES)],
        )
        for first in range(1, jobs + 1, CHUNK):
            cursor.execute(
                FILL,
                {
                    "queues": list(QUEUES),
                    "nqueues": len(QUEUES),
                    "funcs": list(FUNCS),
                    "nfuncs": len(FUNCS),
                    "jobs": jobs,
                    "done": done,
                    "started": STARTED,
                    "workers": WORKERS,
                    "first": first,
                    "last": min(first + CHUNK - 1, jobs),
                },
            )
        # Flows of three run jobs over the oldest 1% of the jobs; named schedules: 50 of
        # the scheduled jobs, each with past runs among the finished ones.
        cursor.execute(FLOWS, {"flows": max(jobs // 300, 1)})
        cursor.execute(SCHEDULES, {})
        cursor.execute("VACUUM ANALYZE pq_job")
        cursor.execute("VACUUM ANALYZE pq_flow")
        cursor.execute("VACUUM ANALYZE pq_queue")
        cursor.execute("VACUUM ANALYZE pq_worker")
    return time.perf_counter() - start


def row_count() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pq_job")
        return int(cursor.fetchone()[0])


def status_counts() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT status, count(*) FROM pq_job GROUP BY 1 ORDER BY 2 DESC")
        return ", ".join(f"{status} {count:,}" for status, count in cursor.fetchall())


class QueryTimer:
    """An execute_wrapper that records each query's SQL, parameters and milliseconds."""

    def __init__(self) -> None:
        self.queries: list[tuple[str, Any, float]] = []

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.queries.append((sql, params, (time.perf_counter() - start) * 1000))


@contextlib.contextmanager
def timed_queries() -> Iterator[QueryTimer]:
    from django.db import connection

    timer = QueryTimer()
    with connection.execute_wrapper(timer):
        yield timer


def measure(client: Any, page: Page, jobs: int, runs: int, explain: bool) -> Measured:
    import re

    from django.urls import reverse

    url = reverse(page.url_name)
    response = client.get(url, page.params)  # warm-up (and the check that the page works)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} {page.params}: HTTP {response.status_code}")
    rows_shown = len(re.findall(rb'<tr>\s*<td class="action-checkbox"', response.content))
    if not rows_shown:
        rows_shown = len(re.findall(rb"<tr>\s*<t[hd] class=\"field-", response.content))
    times: list[float] = []
    slow: dict[str, float] = {}
    slow_params: dict[str, Any] = {}
    queries = 0
    for _ in range(runs):
        with timed_queries() as timer:
            start = time.perf_counter()
            response = client.get(url, page.params)
            times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
        queries = len(timer.queries)
        for sql, params, ms in timer.queries:
            if ms > SLOW_QUERY_MS:
                slow[sql] = max(ms, slow.get(sql, 0.0))
                slow_params[sql] = params
    if explain:
        for sql in slow:
            print_explain(sql, slow_params[sql])
    return Measured(page, jobs, times, queries, rows_shown, slow)


def print_explain(sql: str, params: Any) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        plan = "\n".join(f"      {row[0]}" for row in cursor.fetchall())
    print(f"    EXPLAIN ANALYZE of: {sql[:300]}\n{plan}", flush=True)


def superuser_client() -> Any:
    from django.contrib.auth.models import User
    from django.test import Client

    user = User.objects.filter(username=USERNAME).first()
    if user is None:
        user = User.objects.create_superuser(USERNAME, "bench@example.com", "secret")
    client = Client()
    client.force_login(user)
    return client


def print_row(result: Measured) -> None:
    flag = "  SLOW" if result.median > SLOW_PAGE_MS else ""
    print(
        f"  {result.page.label:<44} {result.median:8.1f} {result.max:8.1f}"
        f" {result.queries:8d} {result.rows_shown:5d}{flag}",
        flush=True,
    )
    for sql, ms in sorted(result.slow.items(), key=lambda item: -item[1]):
        text = " ".join(sql.split())
        print(f"      query > {SLOW_QUERY_MS:.0f} ms ({ms:.0f} ms): {text[:400]}", flush=True)


def run_pages(client: Any, jobs: int, runs: int, explain: bool, title: str) -> list[Measured]:
    import datetime

    year = datetime.datetime.now(datetime.UTC).year
    print(f"\n{title}", flush=True)
    print(
        f"  {'page':<44} {'median':>8} {'max':>8} {'queries':>8} {'rows':>5}"
        f"   (ms; {runs} runs after a warm-up)",
        flush=True,
    )
    results = []
    for page in pages(year, jobs):
        result = measure(client, page, jobs, runs, explain)
        print_row(result)
        results.append(result)
    return results


def print_summary(all_results: dict[str, list[Measured]], command: str) -> None:
    labels = list(all_results)
    print(f"\nSummary: median page time (ms), {command}")
    print("  " + f"{'page':<44}" + "".join(f" {label:>22}" for label in labels))
    by_page: dict[str, dict[str, float]] = {}
    for label, results in all_results.items():
        for result in results:
            by_page.setdefault(result.page.label, {})[label] = result.median
    for page, values in by_page.items():
        print("  " + f"{page:<44}" + "".join(f" {values.get(lb, 0):>22.1f}" for lb in labels))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python bench/admin_changelist.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    from pq.testing import PostgresUnavailable, TemporaryPostgres

    cluster = None
    if args.dsn is None:
        try:
            cluster = TemporaryPostgres().start()  # PostgreSQL's durable defaults
        except PostgresUnavailable as exc:
            print(f"{command.strip()}: {exc}", file=sys.stderr)
            return 2
    try:
        configure(args.dsn or cluster.dsn)
        from django.db import connection

        from pq import benchmark

        print(benchmark.format_environment(benchmark.environment()), flush=True)
        print(f"command:    {command.strip()}", flush=True)
        client = superuser_client()
        all_results: dict[str, list[Measured]] = {}
        for jobs in args.jobs:
            if args.reuse and args.dsn and row_count() == jobs:
                print(f"\npq_job: {jobs:,} jobs, reused ({status_counts()})", flush=True)
            else:
                seconds = fill(jobs)
                print(f"\npq_job: {jobs:,} jobs in {seconds:.1f} s ({status_counts()})")
            label = f"{jobs:,} jobs"
            all_results[label] = run_pages(client, jobs, args.runs, args.explain, label)
            for index in args.index:
                with connection.cursor() as cursor:
                    start = time.perf_counter()
                    cursor.execute(index)
                    cursor.execute("ANALYZE pq_job")
                    print(f"\n{index}: {time.perf_counter() - start:.1f} s", flush=True)
            if args.index:
                label = f"{jobs:,} jobs + index"
                all_results[label] = run_pages(client, jobs, args.runs, args.explain, label)
                with connection.cursor() as cursor:
                    for index in args.index:
                        name = index.split(" ON ")[0].split()[-1]
                        cursor.execute(f"DROP INDEX IF EXISTS {name}")
        print_summary(all_results, command.strip())
        return 0
    finally:
        from django.db import connections

        connections.close_all()
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
