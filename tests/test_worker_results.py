"""How long a worker keeps results: result_ttl, PQ_DEFAULT_RESULT_TTL, and expiry while it runs."""

from __future__ import annotations

import datetime
import threading
import time

import pytest
from django.test import override_settings
from psycopg2.extensions import connection

from pq import Queue, Worker
from pq.models import Job, JobStatus
from tests import jobs


def burst(**options: object) -> Worker:
    worker = Worker(["default"], **options)  # type: ignore[arg-type]
    worker.work(burst=True)
    return worker


def assert_expires_after(job: Job, seconds: int) -> None:
    job.refresh_from_db()
    assert job.status == JobStatus.FINISHED
    assert job.ended_at is not None and job.expires_at is not None
    delta = (job.expires_at - job.ended_at).total_seconds()
    assert delta == pytest.approx(seconds, abs=1.0)


def test_result_ttl_zero_deletes_the_job_once_it_finished() -> None:
    job = Queue().enqueue_call(jobs.say_hello, result_ttl=0)
    kept = Queue().enqueue_call(jobs.say_hello)
    assert burst().jobs_done == 2
    with pytest.raises(Job.DoesNotExist):
        Job.fetch(job.pk)
    assert Job.fetch(kept.pk).is_finished


def test_result_ttl_zero_keeps_a_failed_job() -> None:
    """Only results expire: a failed job stays for someone to look at or requeue."""
    job = Queue().enqueue_call(jobs.div_by_zero, result_ttl=0)
    burst()
    job.refresh_from_db()
    assert (job.status, job.queue, job.expires_at) == (JobStatus.FAILED, "failed", None)


def test_result_ttl_minus_one_keeps_the_result_forever() -> None:
    job = Queue().enqueue_call(jobs.say_hello, result_ttl=-1)
    burst()
    job.refresh_from_db()
    assert job.status == JobStatus.FINISHED
    assert job.result == "Hi there, Stranger!"
    assert job.ended_at is not None
    assert job.expires_at is None


def test_result_ttl_n_keeps_the_result_n_seconds() -> None:
    job = Queue().enqueue_call(jobs.say_hello, result_ttl=86400)
    burst()
    assert_expires_after(job, 86400)


def test_default_result_ttl_is_500_seconds() -> None:
    job = Queue().enqueue(jobs.say_hello)
    burst()
    assert_expires_after(job, 500)


@pytest.mark.parametrize("setting", [0, -1, 42])
def test_pq_default_result_ttl_setting(setting: int) -> None:
    job = Queue().enqueue(jobs.say_hello)
    explicit = Queue().enqueue_call(jobs.say_hello, result_ttl=7)
    with override_settings(PQ_DEFAULT_RESULT_TTL=setting):
        burst()
    assert_expires_after(explicit, 7)  # a job's own result_ttl wins over the setting
    if setting == 0:
        assert not Job.objects.filter(pk=job.pk).exists()
    elif setting == -1:
        job.refresh_from_db()
        assert job.is_finished and job.expires_at is None
    else:
        assert_expires_after(job, setting)


def test_worker_default_result_ttl_argument_overrides_the_setting() -> None:
    job = Queue().enqueue(jobs.say_hello)
    with override_settings(PQ_DEFAULT_RESULT_TTL=-1):
        burst(default_result_ttl=30)
    assert_expires_after(job, 30)


def test_expired_results_are_deleted_by_an_idle_worker(raw_conn: connection) -> None:
    q = Queue()
    expired = q.enqueue_call(jobs.say_hello, args=("old",), result_ttl=1)
    fresh = q.enqueue_call(jobs.say_hello, args=("new",), result_ttl=3600)
    forever = q.enqueue_call(jobs.say_hello, args=("forever",), result_ttl=-1)
    burst()
    assert Job.fetch(expired.pk).is_finished
    with raw_conn.cursor() as cursor:  # make its result a minute old rather than wait for it
        cursor.execute(
            "UPDATE pq_job SET expires_at = now() - interval '1 minute' WHERE id = %s",
            [expired.pk],
        )

    def gone() -> bool:
        with raw_conn.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pq_job WHERE id = %s", [expired.pk])
            return cursor.fetchone()[0] == 0

    outcome: dict[str, float] = {}

    def stop_when_gone() -> None:
        """Wait for the expiry (or give up), then ask the worker to stop."""
        start = time.monotonic()
        deadline = start + 10
        while time.monotonic() < deadline and not gone():
            time.sleep(0.05)
        outcome["after"] = time.monotonic() - start
        with raw_conn.cursor() as cursor:
            cursor.execute("SELECT pq_stop_workers()")

    idle = Worker(["default"], heartbeat_interval=0.2)
    stopper = threading.Thread(target=stop_when_gone, daemon=True)
    stopper.start()
    idle.work()  # not burst: it waits for jobs, ticking every 0.2 s, until stopped
    stopper.join(timeout=15)

    assert gone(), "the expired job is still there after the worker ticked for 10 s"
    assert outcome["after"] < 5
    assert Job.fetch(fresh.pk).result == "Hi there, new!"
    assert Job.fetch(forever.pk).result == "Hi there, forever!"


def test_expired_results_are_deleted_between_jobs_of_a_burst() -> None:
    q = Queue()
    short = q.enqueue_call(jobs.say_hello, result_ttl=1)
    burst()
    assert Job.fetch(short.pk).is_finished
    time.sleep(1.2)
    q.enqueue(jobs.sleep, 0.3)
    q.enqueue(jobs.sleep, 0.3)
    burst(heartbeat_interval=0.1)
    assert not Job.objects.filter(pk=short.pk).exists()


def test_expires_at_is_set_from_the_database_clock() -> None:
    """ended_at and expires_at come from the same transaction (now()), not the worker's clock."""
    job = Queue().enqueue_call(jobs.say_hello, result_ttl=10)
    burst()
    job.refresh_from_db()
    assert job.expires_at == job.ended_at + datetime.timedelta(seconds=10)
