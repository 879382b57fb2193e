"""The non-forking worker mode (``Worker(fork=False, batch=N)``, ``pqworker --simple``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from pq import Queue, Worker, get_failed_queue
from pq.models import Job, JobStatus
from tests import jobs


def test_jobs_run_in_the_worker_process(tmp_path: Path) -> None:
    marker = tmp_path / "pids"
    job = Queue().enqueue(jobs.record_pid, str(marker))

    Worker(Queue(), fork=False).work(burst=True)

    job.refresh_from_db()
    assert job.status == JobStatus.FINISHED
    assert job.result == os.getpid()


def test_a_batch_runs_every_job_in_fifo_order_and_stores_each_result(tmp_path: Path) -> None:
    marker = tmp_path / "order"
    q = Queue()
    ids = [q.enqueue(jobs.record_pid, str(marker), str(n)).pk for n in range(25)]

    worker = Worker(q, fork=False, batch=10)
    worker.work(burst=True)

    assert worker.jobs_done == 25
    assert [line.split()[0] for line in marker.read_text().splitlines()] == [
        str(n) for n in range(25)
    ]
    statuses = set(Job.objects.filter(pk__in=ids).values_list("status", flat=True))
    assert statuses == {JobStatus.FINISHED}


def test_a_batch_follows_queue_priority(tmp_path: Path) -> None:
    marker = tmp_path / "order"
    for n in range(3):
        Queue("low").enqueue(jobs.record_pid, str(marker), f"low{n}")
    for n in range(3):
        Queue("high").enqueue(jobs.record_pid, str(marker), f"high{n}")

    Worker(["high", "low"], fork=False, batch=10).work(burst=True)

    ran = [line.split()[0] for line in marker.read_text().splitlines()]
    assert ran == ["high0", "high1", "high2", "low0", "low1", "low2"]


def test_a_job_over_its_timeout_is_interrupted_and_the_next_one_runs() -> None:
    q = Queue()
    slow = q.enqueue_call(jobs.sleep, args=(10,), timeout=1)
    fast = q.enqueue(jobs.add, 1, 2)

    Worker(q, fork=False, batch=5).work(burst=True)

    slow.refresh_from_db()
    fast.refresh_from_db()
    assert slow.status == JobStatus.FAILED
    assert slow.queue == "failed"
    assert "JobTimeoutException" in slow.exc_info
    assert fast.status == JobStatus.FINISHED and fast.result == 3


def test_failures_run_the_handler_chain_in_process() -> None:
    calls: list[str] = []

    def keep_in_queue(job: Job, exc_type: type, exc_value: BaseException, tb: object) -> bool:
        calls.append(exc_type.__name__)
        return False

    job = Queue().enqueue(jobs.div_by_zero)
    Worker.create([Queue()], exc_handler=keep_in_queue, fork=False).work(burst=True)

    job.refresh_from_db()
    assert calls == ["ZeroDivisionError"]
    assert job.status == JobStatus.FAILED
    assert job.queue == "default"
    assert get_failed_queue().count == 0


def test_stopping_mid_batch_puts_the_jobs_not_run_back(tmp_path: Path) -> None:
    q = Queue()
    first = q.enqueue(jobs.send_sigterm_to_self)
    rest = [q.enqueue(jobs.add, n, n).pk for n in range(5)]

    worker = Worker(q, fork=False, batch=10)
    worker.work()  # not burst: only the SIGTERM the first job sends stops it

    first.refresh_from_db()
    assert first.status == JobStatus.FINISHED
    assert worker.jobs_done == 1
    left = Job.objects.filter(pk__in=rest)
    assert sorted(left.values_list("status", flat=True)) == [JobStatus.QUEUED] * 5
    assert set(left.values_list("worker", flat=True)) == {None}
    assert q.count == 5


@pytest.mark.parametrize(
    ("options", "message"),
    [({"fork": True, "batch": 5}, "batch > 1 needs fork=False"), ({"batch": 0}, "at least 1")],
)
def test_bad_batch_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Worker(Queue(), **options)


def test_pqworker_simple_batch_runs_the_queue() -> None:
    q = Queue()
    ids = [q.enqueue(jobs.add, n, 1).pk for n in range(7)]

    call_command("pqworker", "default", "--simple", "--batch", "3", "--burst")

    results = dict(Job.objects.filter(pk__in=ids).values_list("id", "result"))
    assert results == {job_id: n + 1 for n, job_id in enumerate(ids)}


def test_a_busy_worker_drops_the_notifications_its_claims_answer() -> None:
    """NOTIFYs received while busy pile up in the connection unless each claim drops them."""
    count = 300
    seen: list[int] = []

    def count_notifies(job: Job, *exc_info: Any) -> None:
        seen.append(len(worker._conn.notifies))

    q = Queue()
    q.enqueue(jobs.enqueue_elsewhere, count)  # reach the worker while it is busy
    q.enqueue(jobs.add, 1, 2)
    q.enqueue(jobs.div_by_zero)
    worker = Worker(q, fork=False, exc_handler=count_notifies)
    worker.work(burst=True)

    assert len(seen) == 1
    assert seen[0] < count, "the worker kept every notification received while busy"


def test_notices_of_postgresql_are_logged_as_warnings(caplog: pytest.LogCaptureFixture) -> None:
    def raise_a_warning(job: Job, *exc_info: Any) -> None:
        with worker._conn.cursor() as cursor:
            cursor.execute("DO $$ BEGIN RAISE WARNING 'outcome of job % not stored', 42; END $$")

    Queue().enqueue(jobs.div_by_zero)
    worker = Worker(Queue(), fork=False, exc_handler=raise_a_warning)
    with caplog.at_level(logging.WARNING, logger="pq"):
        worker.work(burst=True)

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("WARNING:  outcome of job 42 not stored" in text for text in warnings), warnings
