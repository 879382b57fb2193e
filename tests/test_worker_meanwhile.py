"""Work done while a query waits for the server (pq.connection.meanwhile), and the forking
worker's use of it: the next work horse is forked while the claim is under way.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras
import pytest

from pq import Queue, Worker, executors
from pq.connection import connect, forget_wait_callback, meanwhile
from pq.horse import Horse
from pq.models import JobStatus
from tests import jobs


@pytest.fixture
def conn() -> Iterator[Any]:
    connection = connect("default")
    connection.autocommit = True
    try:
        yield connection
    finally:
        connection.close()
        psycopg2.extensions.set_wait_callback(None)


def value(conn: Any, query: str) -> Any:
    with conn.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchone()[0]


# pq.connection.meanwhile


def test_the_task_runs_while_the_query_waits_for_the_server(conn: Any) -> None:
    ran: list[float] = []
    started = time.monotonic()
    with meanwhile(lambda: ran.append(time.monotonic())):
        assert value(conn, "SELECT 42 FROM pg_sleep(0.5)") == 42
    answered = time.monotonic()
    assert len(ran) == 1
    assert ran[0] - started < 0.4 < answered - started, "the task did not run during the query"
    assert psycopg2.extensions.get_wait_callback() is None


def test_the_task_runs_once_however_many_queries_wait(conn: Any) -> None:
    ran: list[int] = []
    with meanwhile(lambda: ran.append(1)):
        for number in range(3):
            assert value(conn, f"SELECT {number}") == number
    assert ran == [1]


def test_a_failing_task_is_logged_and_the_query_answers(
    conn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def fail() -> None:
        raise RuntimeError("no fork today")

    with caplog.at_level(logging.ERROR, logger="pq"), meanwhile(fail):
        assert value(conn, "SELECT 7") == 7
    assert "Work done while waiting for the database failed" in caplog.text
    assert "no fork today" in caplog.text


def test_a_query_error_reaches_the_caller_and_the_callback_is_removed(conn: Any) -> None:
    with pytest.raises(psycopg2.errors.DivisionByZero), meanwhile(lambda: None):
        value(conn, "SELECT 1 / 0")
    assert psycopg2.extensions.get_wait_callback() is None
    assert value(conn, "SELECT 1") == 1


def test_notices_and_notifications_reach_the_connection_as_without_a_task(conn: Any) -> None:
    # The worker logs its claim's warnings (a result not stored) from conn.notices, and
    # reads wake-ups from conn.notifies.
    with conn.cursor() as cursor:
        cursor.execute("LISTEN pq_meanwhile_test")
    with meanwhile(lambda: None), conn.cursor() as cursor:
        cursor.execute(
            "DO $$ BEGIN RAISE WARNING 'result not stored'; END $$;"
            " NOTIFY pq_meanwhile_test, 'woken'"
        )
    assert any("result not stored" in notice for notice in conn.notices)
    assert [(n.channel, n.payload) for n in conn.notifies] == [("pq_meanwhile_test", "woken")]


def test_no_task_sets_no_callback(conn: Any) -> None:
    with meanwhile(None):
        assert psycopg2.extensions.get_wait_callback() is None
        assert value(conn, "SELECT 1") == 1


def test_a_site_wait_callback_is_kept_and_the_task_is_not_run(conn: Any) -> None:
    waits: list[int] = []

    def site_callback(connection: Any) -> None:  # as psycogreen's would
        waits.append(1)
        psycopg2.extras.wait_select(connection)

    psycopg2.extensions.set_wait_callback(site_callback)
    ran: list[int] = []
    with meanwhile(lambda: ran.append(1)):
        assert value(conn, "SELECT 3") == 3
        forget_wait_callback()  # not ours: kept
    assert ran == []
    assert waits, "the site's callback was not used"
    assert psycopg2.extensions.get_wait_callback() is site_callback


def test_forget_wait_callback_drops_the_callback_of_meanwhile(conn: Any) -> None:
    with meanwhile(lambda: None):
        assert psycopg2.extensions.get_wait_callback() is not None
        forget_wait_callback()
        assert psycopg2.extensions.get_wait_callback() is None
        assert value(conn, "SELECT 5") == 5


# The forking worker


def burst_recording_preforks(monkeypatch: pytest.MonkeyPatch, cpu_free: bool) -> list[bool]:
    """Run a burst worker with ``_cpu_free`` answering ``cpu_free``; return, for each spare
    horse it forked, whether the fork happened while a claim waited for the server."""
    monkeypatch.setattr(executors, "_cpu_free", lambda more=0: cpu_free)
    during_claim: list[bool] = []
    prefork = Horse.prefork.__func__  # type: ignore[attr-defined]

    def recording(cls: type[Horse], handlers: Any) -> Horse:
        during_claim.append(psycopg2.extensions.get_wait_callback() is not None)
        return prefork(cls, handlers)

    monkeypatch.setattr(Horse, "prefork", classmethod(recording))
    worker = Worker(["default"])
    worker.work(burst=True)
    assert worker.jobs_done == 20
    return during_claim


def test_with_a_cpu_free_each_horse_is_forked_during_the_claim_and_runs_one_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue = Queue()
    enqueued = [queue.enqueue(jobs.horse_facts) for _ in range(20)]

    during_claim = burst_recording_preforks(monkeypatch, cpu_free=True)

    # One spare per claim: 20 that got a job, one more from the last claim, which found none.
    assert during_claim == [True] * 21
    facts = []
    for job in enqueued:
        job.refresh_from_db()
        assert job.status == JobStatus.FINISHED, job.exc_info
        facts.append(job.result)
    assert len({fact["pid"] for fact in facts}) == 20, "a horse ran more than one job"
    assert {fact["ppid"] for fact in facts} == {os.getpid()}
    assert not any(fact["wait_callback"] for fact in facts), "a horse kept the claim's callback"
    assert all(fact["jobs"] >= 20 for fact in facts)
    assert psycopg2.extensions.get_wait_callback() is None


def test_with_no_cpu_free_horses_are_forked_after_the_claim(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue = Queue()
    enqueued = [queue.enqueue(jobs.horse_facts) for _ in range(20)]

    during_claim = burst_recording_preforks(monkeypatch, cpu_free=False)

    assert during_claim == []  # each horse was forked with its job
    for job in enqueued:
        job.refresh_from_db()
        assert job.status == JobStatus.FINISHED, job.exc_info
        assert not job.result["wait_callback"]
