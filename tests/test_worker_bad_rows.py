"""Rows a worker cannot decode, describe or run: each fails as its own job, the worker goes on.

Whoever may call ``pq_enqueue`` can write any JSON, pickle or date into a row; the worker must
fail that job with the reason and keep serving the others (and never crash, since a crashed
worker's job goes back to its queue and kills the next one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg2.extensions import connection

from pq import Queue, Worker
from pq.models import Job, JobStatus
from tests import jobs
from tests.workerprocs import WorkerProcesses, wait_until

BAD_ROWS = [
    pytest.param(
        """SELECT pq_enqueue('default', 'tests.jobs.say_hello', '[{"$pickle": "!!!"}]')""",
        "UndecodableJob: args: ",
        id="bad-base64",
    ),
    pytest.param(
        "SELECT pq_enqueue('default', 'tests.jobs.say_hello',"
        """ kwargs => '{"name": {"$pickle": "Z2FyYmFnZQ=="}}')""",
        "UndecodableJob: kwargs: ",
        id="bad-pickle",
    ),
    pytest.param(
        "SELECT pq_enqueue('default', 'tests.jobs.echo',"
        " (repeat('[', 3000) || repeat(']', 3000))::jsonb)",
        "UndecodableJob: args: RecursionError",
        id="deep-args",
    ),
    pytest.param(
        "SELECT pq_enqueue('default', 'calculate', '[1, 2]',"
        " instance => '\\x0067617262616765'::bytea)",
        "UndecodableJob: instance: UnpicklingError",
        id="garbage-instance",
    ),
]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[WorkerProcesses]:
    with WorkerProcesses(tmp_path) as started:
        yield started


def enqueue_raw(raw_conn: connection, query: str) -> int:
    """Enqueue with plain SQL, as any client with EXECUTE on pq_enqueue can; return the id."""
    with raw_conn.cursor() as cursor:
        cursor.execute(query)
        return int(cursor.fetchone()[0])


def assert_failed_with(job_id: int, reason: str) -> None:
    """Assert the job failed into the failed queue with ``reason`` (its arguments unread: the
    ORM could not decode them either)."""
    job = Job.objects.values("status", "queue", "origin", "exc_info").get(pk=job_id)
    assert job["status"] == JobStatus.FAILED, job
    assert job["queue"] == "failed" and job["origin"] == "default", job
    assert job["exc_info"].startswith(reason), job["exc_info"]


@pytest.mark.parametrize(("query", "reason"), BAD_ROWS)
def test_a_forking_worker_fails_a_bad_row_and_runs_the_next_job(
    raw_conn: connection, query: str, reason: str
) -> None:
    bad = enqueue_raw(raw_conn, query)
    good = Queue().enqueue(jobs.say_hello, "after")

    worker = Worker(["default"])
    worker.work(burst=True)

    assert_failed_with(bad, reason)
    assert Job.fetch(good.pk).result == "Hi there, after!"
    assert worker.jobs_done == 2


@pytest.mark.parametrize(("query", "reason"), BAD_ROWS)
def test_a_bad_row_in_a_batch_fails_alone(raw_conn: connection, query: str, reason: str) -> None:
    q = Queue()
    before = [q.enqueue(jobs.add, n, 1).pk for n in range(3)]
    bad = enqueue_raw(raw_conn, query)
    after = [q.enqueue(jobs.add, n, 10).pk for n in range(3)]

    Worker(q, fork=False, batch=10).work(burst=True)

    assert_failed_with(bad, reason)
    results = dict(Job.objects.filter(pk__in=before + after).values_list("id", "result"))
    assert results == dict(zip(before + after, [1, 2, 3, 10, 11, 12], strict=True))


def test_every_bad_row_of_a_batch_is_failed_with_its_own_reason(raw_conn: connection) -> None:
    bad = [enqueue_raw(raw_conn, param.values[0]) for param in BAD_ROWS]
    good = Queue().enqueue(jobs.add, 1, 2)

    Worker(["default"], fork=False, batch=10).work(burst=True)

    for job_id, param in zip(bad, BAD_ROWS, strict=True):
        assert_failed_with(job_id, param.values[1])
    assert Job.fetch(good.pk).result == 3


def test_a_pqworker_subprocess_fails_a_bad_row_and_exits_cleanly(
    workers: WorkerProcesses, raw_conn: connection
) -> None:
    bad = [enqueue_raw(raw_conn, param.values[0]) for param in BAD_ROWS]
    good = Queue().enqueue(jobs.say_hello, "after")

    worker = workers.pqworker("default", "--burst", "--name=w1")

    assert worker.wait(timeout=30) == 0, worker.log()
    for job_id, param in zip(bad, BAD_ROWS, strict=True):
        assert_failed_with(job_id, param.values[1])
    assert Job.fetch(good.pk).result == "Hi there, after!"
    assert "Traceback" not in worker.log()


def test_a_described_job_whose_instance_is_garbage_fails_in_its_horse(
    raw_conn: connection,
) -> None:
    """With a description the worker need not unpickle the instance: the horse fails the job."""
    bad = enqueue_raw(
        raw_conn,
        "SELECT pq_enqueue('default', 'calculate', '[1, 2]', description => 'calc',"
        " instance => '\\x0067617262616765'::bytea)",
    )
    good = Queue().enqueue(jobs.add, 1, 2)

    Worker(["default"]).work(burst=True)

    job = Job.fetch(bad)
    assert job.status == JobStatus.FAILED
    assert "UnpicklingError" in job.exc_info, job.exc_info
    assert Job.fetch(good.pk).result == 3


@pytest.fixture
def next_due_past_year_9999(raw_conn: connection) -> Iterator[None]:
    """Make ``pq_next_due`` return year 20000, as a schema that predates its cap does for a
    job scheduled that far; put the installed definition back afterwards."""
    with raw_conn.cursor() as cursor:
        cursor.execute("SELECT pg_get_functiondef('pq_next_due(text[])'::regprocedure)")
        installed = cursor.fetchone()[0]
        cursor.execute(
            "CREATE OR REPLACE FUNCTION pq_next_due(queue_names text[]) RETURNS timestamptz"
            " LANGUAGE sql STABLE AS $$ SELECT '20000-01-01 00:00:00+00'::timestamptz $$"
        )
        try:
            yield
        finally:
            cursor.execute(installed)


@pytest.mark.usefixtures("next_due_past_year_9999")
def test_a_worker_survives_a_due_date_python_cannot_hold(workers: WorkerProcesses) -> None:
    worker = workers.python_worker(["default"], "dated", 0.5)
    worker.wait_for_log("pq_next_due returned a time Python cannot hold", timeout=15)
    good = Queue().enqueue(jobs.say_hello, "after")

    wait_until(lambda: Job.fetch(good.pk).status == JobStatus.FINISHED, what="the next job")
    assert worker.popen.poll() is None, worker.log()
    assert "Traceback" not in worker.log()
