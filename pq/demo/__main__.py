"""Run django-pq end to end: python -m pq.demo

Uses the PostgreSQL named by $PQ_DSN (a libpq DSN or postgresql:// URL), else starts a
throwaway cluster; migrates; enqueues the README's jobs from Python and one from plain SQL;
runs a burst worker (a forked horse per job) and prints every job's outcome.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import psycopg2

from pq.testing import configure_django


class DemoError(Exception):
    """The demo has no database to run on; the message is one line saying why."""


@contextlib.contextmanager
def database() -> Iterator[str]:
    """Yield the DSN of $PQ_DSN, or of a throwaway cluster stopped afterwards.

    Raises DemoError if neither is available.
    """
    dsn = os.environ.get("PQ_DSN")
    if dsn:
        where = describe(dsn)
        print(f"Using PostgreSQL from $PQ_DSN: {where}; the demo writes into it", flush=True)
        yield dsn
        return
    from pq.testing import PostgresUnavailable, TemporaryPostgres

    print("No $PQ_DSN: starting a throwaway PostgreSQL")
    cluster = TemporaryPostgres()
    try:
        cluster.start()
    except PostgresUnavailable as exc:
        raise DemoError(str(exc)) from exc
    with cluster:
        print(f"Started PostgreSQL from {cluster.bin_dir}")
        yield cluster.dsn


def describe(dsn: str) -> str:
    """Connect to ``dsn`` and return where it leads: host, port, dbname and user, no password.

    Raises DemoError if the connection fails.
    """
    try:
        conn = psycopg2.connect(dsn)
    except psycopg2.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DemoError(f"cannot connect to $PQ_DSN: {first_line}") from exc
    try:
        info = conn.info
        return f"host={info.host} port={info.port} dbname={info.dbname} user={info.user}"
    finally:
        conn.close()


def main() -> int:
    """Run the demo; on a missing database print one line to stderr and return 2."""
    try:
        with database() as dsn:
            return run(dsn)
    except DemoError as exc:
        print(f"pq.demo: {exc}", file=sys.stderr)
        return 2


def run(dsn: str) -> int:
    """Migrate, enqueue, work and report on ``dsn``; return 0 if every job went as expected."""
    configure_django(dsn)
    from django.core.management import call_command

    from pq import Queue, Worker
    from pq.decorators import job
    from pq.demo import jobs
    from pq.models import Job

    call_command("migrate", verbosity=0)
    print("Migrated: django-pq's tables and SQL functions are installed")

    q = Queue()
    enqueued = [
        q.enqueue(jobs.say_hello, "You"),
        q.enqueue_call(jobs.say_hello, kwargs={"name": "You"}),
        q.enqueue_call(jobs.say_hello, args=("again",), timeout=60),
        q.enqueue(jobs.Calculator(2).calculate, 4, 5),
        q.enqueue(jobs.count_words, "RQ sets a low barrier for entry"),
        job("default")(jobs.say_hello).delay("friend"),
        q.enqueue(jobs.fail, "this job fails on purpose"),
    ]
    with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT pq_enqueue('default', 'pq.utils.test_job', '[\"from SQL\"]')")
        sql_job_id = cursor.fetchone()[0]
    conn.close()
    print(f"Enqueued {len(enqueued)} jobs from Python and job {sql_job_id} from plain SQL")

    Worker(q).work(burst=True)

    print("\nid  status    result / error")
    ok = True
    for item in Job.objects.order_by("id"):
        outcome = repr(item.result) if item.status == "finished" else item.exc_info.splitlines()[-1]
        print(f"{item.id:<3} {item.status:<9} {item.get_description()} -> {outcome}")
        ok &= item.status == "finished" or item.func == "pq.demo.jobs.fail"
    if not ok:
        print("Some job did not finish as expected", file=sys.stderr)
    from django.db import connections

    connections.close_all()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
