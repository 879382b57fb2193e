"""Priorities and retries from Python, run by real forking workers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.db import DatabaseError, connections
from django.test import Client
from django.urls import reverse

from pq import Flow, Queue, Retry, Worker
from pq.decorators import job
from pq.models import Job, JobStatus
from tests import jobs, test_admin
from tests.test_admin_lists import cell
from tests.test_serial_queue import spans
from tests.workerprocs import WorkerProcesses, wait_until

_admin_urls = test_admin._admin_urls
client = test_admin.client


def test_a_job_that_raises_is_retried_after_its_interval(tmp_path: Path) -> None:
    q = Queue()
    failing = q.enqueue_call(
        jobs.fail_once, args=(str(tmp_path / "once"),), retry=Retry(max=2, interval=2)
    )
    Worker(q).work(burst=True)

    failing.refresh_from_db()
    assert failing.status == JobStatus.SCHEDULED, "the failed run was not retried"
    assert failing.attempts == 1
    assert [error["attempt"] for error in failing.errors] == [1]
    assert "failing the first run on purpose" in failing.errors[0]["exc_info"]
    Worker(q).work(burst=True)  # not due yet: nothing runs
    failing.refresh_from_db()
    assert failing.status == JobStatus.SCHEDULED

    wait_until(lambda: time.time() >= failing.scheduled_for.timestamp(), timeout=5)
    Worker(q).work(burst=True)
    failing.refresh_from_db()
    assert (failing.status, failing.attempts, failing.result) == ("finished", 2, "second run")
    failed_at = failing.errors[0]["failed_at"]
    assert failing.started_at.timestamp() - _timestamp(failed_at) >= 2, "retried before 2 s"


def test_each_failure_kind_is_retried_then_failed_with_every_attempt_kept() -> None:
    q = Queue()
    raising = q.enqueue_call(jobs.div_by_zero, retry=Retry(max=1))
    timing_out = q.enqueue_call(jobs.sleep, args=(30,), timeout=1, retry=Retry(max=1))
    dying = q.enqueue_call(jobs.exit_hard, retry=Retry(max=1))

    Worker(q).work(burst=True)

    for failed, text in (
        (raising, "ZeroDivisionError"),
        (timing_out, "JobTimeoutException"),
        (dying, "WorkHorseDied"),
    ):
        failed.refresh_from_db()
        assert (failed.status, failed.queue, failed.attempts) == ("failed", "failed", 2), text
        assert [error["attempt"] for error in failed.errors] == [1, 2]
        assert all(text in error["exc_info"] for error in failed.errors), failed.errors


def test_a_job_without_retry_fails_at_the_first_error() -> None:
    q = Queue()
    plain = q.enqueue(jobs.div_by_zero)
    Worker(q).work(burst=True)
    plain.refresh_from_db()
    assert (plain.status, plain.attempts, len(plain.errors)) == ("failed", 1, 1)


def test_priorities_from_python_the_decorator_and_batches(tmp_path: Path) -> None:
    log = str(tmp_path / "spans")
    q = Queue("p")
    q.enqueue_call(jobs.record_span, args=(log, 1, 0))
    job("p", priority=50)(jobs.record_span).delay(log, 2, 0)
    q.enqueue_many([(jobs.record_span, (log, 3, 0))], priority=-10)
    q.enqueue_call(jobs.record_span, args=(log, 4, 0), priority=100)
    with Flow(q) as f:
        f.enqueue_call(jobs.record_span, args=(log, 5, 0), priority=-100)

    Worker(q).work(burst=True)

    ran = spans(tmp_path / "spans")
    assert sorted(ran, key=lambda n: ran[n][0]) == [4, 2, 1, 3, 5]


def test_workers_claim_higher_priorities_first(tmp_path: Path) -> None:
    log = str(tmp_path / "spans")
    q = Queue("ranked")
    groups = {50: range(0, 9), 0: range(9, 18), -50: range(18, 27)}
    for priority, numbers in reversed(groups.items()):  # the lowest enqueued first
        for number in numbers:
            q.enqueue_call(jobs.record_span, args=(log, number, 0.3), priority=priority)

    with WorkerProcesses(tmp_path) as workers:
        for _ in range(3):
            workers.pqworker("ranked", "--burst")
        done = tmp_path / "spans"
        wait_until(lambda: done.exists() and len(spans(done)) == 27, timeout=60, what="27 jobs")

    ran = spans(tmp_path / "spans")
    starts = {p: [ran[n][0] for n in numbers] for p, numbers in groups.items()}
    slack = 0.1  # claims of one round by 3 workers start within ms of each other
    assert max(starts[50]) <= min(starts[0]) + slack, "a priority-0 job ran before a 50"
    assert max(starts[0]) <= min(starts[-50]) + slack, "a priority -50 job ran before a 0"


def test_bad_priorities_and_retries_get_clear_errors() -> None:
    q = Queue()
    with pytest.raises(ValueError, match=r"^priority must be a whole number from -100 to 100"):
        q.enqueue_call(jobs.say_hello, priority=101)
    with pytest.raises(ValueError, match=r"got True"):
        q.enqueue_call(jobs.say_hello, priority=True)
    with pytest.raises(ValueError, match=r"^Retry\(max=...\) must be a whole number, 0 or more"):
        Retry(max=-1)
    with pytest.raises(ValueError, match=r"^Retry\(interval=...\) must be seconds, 0 or more"):
        Retry(max=1, interval=[10, -5])
    with pytest.raises(ValueError, match=r"^Retry\(interval=...\)"):
        Retry(max=1, interval=[])
    with pytest.raises(TypeError, match=r"^retry must be a pq.Retry"):
        q.enqueue_call(jobs.say_hello, retry=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^priority must be"):
        job("default", priority=-101)
    assert Job.objects.count() == 0
    # SQL refuses the same for every other client.
    with (
        connections["default"].cursor() as cursor,
        pytest.raises(DatabaseError, match=r"pq_enqueue: priority must be from -100 to 100"),
    ):
        cursor.execute("SELECT pq_enqueue('default', 'tests.jobs.add', priority => 200)")


def _timestamp(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def test_the_admin_shows_the_attempts_and_each_error(client: Client) -> None:
    q = Queue()
    failed = q.enqueue_call(jobs.div_by_zero, retry=Retry(max=1), priority=7)
    Worker(q).work(burst=True)

    listing = client.get(reverse("admin:pq_failedjob_changelist"))
    assert cell(listing.content, failed.pk, "attempts") == "2"
    page = client.get(reverse("admin:pq_failedjob_change", args=[failed.pk])).content.decode()
    assert "2 of 2" in page
    assert page.count("ZeroDivisionError") >= 3  # the traceback and each attempt's error
    assert "attempt 1 on " in page and "attempt 2 on " in page


def _stop_at_second_attempt(job: Job, *exc_info: object) -> None:
    assert job.retries_left == job.max_retries - job.attempts + 1
    if job.attempts == 2:
        job.stop_retrying()
        assert job.retries_left == 0


def test_an_exception_handler_can_stop_the_retries() -> None:
    q = Queue()
    raising = q.enqueue_call(jobs.div_by_zero, retry=Retry(max=5))
    timing_out = q.enqueue_call(jobs.sleep, args=(30,), timeout=1, retry=Retry(max=5))

    Worker(q, exc_handler=_stop_at_second_attempt).work(burst=True)

    for failed in (raising, timing_out):  # handled in the horse, and in the worker
        failed.refresh_from_db()
        assert (failed.status, failed.attempts, len(failed.errors)) == ("failed", 2, 2)


def test_scheduled_and_cron_jobs_take_priorities_and_retries() -> None:
    from django.utils import timezone

    q = Queue()
    run = q.schedule_call(timezone.now(), jobs.div_by_zero, priority=-20, retry=Retry(max=1))
    tick = q.cron("0 3 * * *", jobs.say_hello, priority=30, retry=Retry(max=2, interval=[5, 9]))
    assert (tick.priority, tick.max_retries, tick.retry_intervals) == (30, 2, [5, 9])
    assert (run.priority, run.max_retries) == (-20, 1)

    Worker(q).work(burst=True)  # the retry runs at once (no interval)

    run.refresh_from_db()
    assert (run.status, run.attempts, len(run.errors)) == ("failed", 2, 2)
    with pytest.raises(ValueError, match=r"^priority must be a whole number"):
        q.schedule_call(timezone.now(), jobs.say_hello, priority=500)
    with pytest.raises(TypeError, match=r"^retry must be a pq.Retry"):
        q.cron("0 3 * * *", jobs.say_hello, name="other", retry=1)  # type: ignore[arg-type]
    assert Job.objects.count() == 2
