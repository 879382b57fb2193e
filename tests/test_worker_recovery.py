"""Workers that die or lose the database: no job is lost, left 'started', or run twice."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest
from django.db import connections
from psycopg2 import sql
from psycopg2.extensions import connection, make_dsn, parse_dsn

from pq import Queue, Worker
from pq.models import Job, JobStatus, WorkerStore
from tests import jobs
from tests.workerprocs import WorkerProcess, WorkerProcesses, kill_hard, pid_alive, wait_until

HEARTBEAT = 0.5  # the worker's TTL is 3 heartbeats, rounded up: 2 s


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[WorkerProcesses]:
    with WorkerProcesses(tmp_path) as started:
        yield started


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def status(job: Job) -> str:
    return Job.fetch(job.pk).status


def scalar(raw_conn: connection, query: str, params: list[object] | None = None) -> object:
    with raw_conn.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchone()[0]


def kill_worker_during_a_job(
    workers: WorkerProcesses, tmp_path: Path
) -> tuple[WorkerProcess, Job, Path]:
    """Start a worker with a short heartbeat, give it a long job, SIGKILL worker and horse."""
    marker = tmp_path / "marker"
    worker = workers.python_worker(["default"], "doomed", HEARTBEAT)
    worker.wait_for_log("*** Listening for work on default")
    job = Queue().enqueue(jobs.sleep_then_mark, 60, str(marker))
    wait_until(lambda: lines(marker) == ["started"], what="the job to start")
    horses = wait_until(worker.horses, what="the horse")
    workers.orphans.extend(horses)

    worker.send(signal.SIGKILL)  # no shutdown code runs: as if the host died
    assert worker.wait(timeout=10) == -signal.SIGKILL
    for horse in horses:  # the host is gone: its horse too
        kill_hard(horse)
    return worker, job, marker


def test_killed_worker_leaves_its_job_started_until_its_heartbeat_expires(
    workers: WorkerProcesses, tmp_path: Path, raw_conn: connection
) -> None:
    _, job, marker = kill_worker_during_a_job(workers, tmp_path)
    killed_at = time.monotonic()

    # the heartbeat has not expired yet: the worker might be alive, so the job stays
    assert scalar(raw_conn, "SELECT pq_reap_workers()") == 0
    assert status(job) == JobStatus.STARTED
    assert WorkerStore.objects.filter(name="doomed").exists()

    def reaped() -> bool:
        return bool(scalar(raw_conn, "SELECT pq_reap_workers()"))

    wait_until(reaped, timeout=10, what="pq_reap_workers to fail the abandoned job")
    waited = time.monotonic() - killed_at

    assert 0.5 < waited < 5, waited
    failed = Job.fetch(job.pk)
    assert failed.status == JobStatus.FAILED
    assert failed.queue == "failed" and failed.origin == "default"
    assert failed.exc_info.startswith("AbandonedJob"), failed.exc_info
    assert "doomed" in failed.exc_info
    assert failed.ended_at is not None
    assert not WorkerStore.objects.filter(name="doomed").exists()
    assert lines(marker) == ["started"]


def test_next_worker_fails_a_dead_workers_job_and_does_not_run_it(
    workers: WorkerProcesses, tmp_path: Path, raw_conn: connection
) -> None:
    _, job, marker = kill_worker_during_a_job(workers, tmp_path)
    expires = scalar(raw_conn, "SELECT expires_at - now() FROM pq_worker WHERE name = 'doomed'")
    time.sleep(expires.total_seconds() + 0.3)  # type: ignore[union-attr]
    after = Queue().enqueue(jobs.say_hello, "next")

    Worker(["default"], name="heir").work(burst=True)

    failed = Job.fetch(job.pk)
    assert failed.status == JobStatus.FAILED
    assert failed.exc_info.startswith("AbandonedJob"), failed.exc_info
    assert failed.queue == "failed"
    assert lines(marker) == ["started"], "the abandoned job was run again"
    assert Job.fetch(after.pk).result == "Hi there, next!"
    assert not WorkerStore.objects.exists()


def test_a_running_worker_reaps_a_dead_worker_on_its_heartbeat(
    workers: WorkerProcesses, tmp_path: Path
) -> None:
    survivor = workers.python_worker(["other"], "survivor", HEARTBEAT)
    survivor.wait_for_log("*** Listening for work on other")
    _, job, _ = kill_worker_during_a_job(workers, tmp_path)

    wait_until(lambda: status(job) == JobStatus.FAILED, timeout=10, what="the survivor to reap")

    assert Job.fetch(job.pk).exc_info.startswith("AbandonedJob")
    assert list(WorkerStore.objects.values_list("name", flat=True)) == ["survivor"]
    assert "Failed 1 job(s) abandoned by dead workers" in survivor.log()


@pytest.mark.parametrize("fork", [True, False], ids=["forking", "simple"])
def test_a_live_worker_keeps_its_heartbeat_while_a_job_outlasts_its_ttl(
    workers: WorkerProcesses, tmp_path: Path, raw_conn: connection, fork: bool
) -> None:
    marker = tmp_path / "marker"
    worker = workers.python_worker(["default"], "busy", HEARTBEAT, fork=fork)
    worker.wait_for_log("*** Listening for work on default")
    job = Queue().enqueue(jobs.sleep_then_mark, 4, str(marker))  # twice the worker's TTL
    wait_until(lambda: lines(marker) == ["started"], what="the job to start")

    while lines(marker) == ["started"]:  # reap as often as we can while the job runs
        assert scalar(raw_conn, "SELECT pq_reap_workers()") == 0
        assert status(job) == JobStatus.STARTED
        time.sleep(0.2)

    wait_until(lambda: status(job) != JobStatus.STARTED, timeout=10)
    done = Job.fetch(job.pk)
    assert done.status == JobStatus.FINISHED, done.exc_info
    assert worker.popen.poll() is None


def test_a_horse_dies_with_its_killed_worker(workers: WorkerProcesses, tmp_path: Path) -> None:
    """No horse runs on without the worker that enforces its timeout."""
    pid_file = tmp_path / "pid"
    worker = workers.python_worker(["default"], "doomed", HEARTBEAT)
    worker.wait_for_log("*** Listening for work on default")
    Queue().enqueue_call(jobs.write_pid_then_sleep, args=(str(pid_file), 60), timeout=90)
    horse = int(wait_until(lambda: pid_file.exists() and pid_file.read_text().strip()))
    workers.orphans.append(horse)

    worker.send(signal.SIGKILL)
    assert worker.wait(timeout=10) == -signal.SIGKILL

    wait_until(lambda: not pid_alive(horse), timeout=2, what="the horse to die with its worker")


def test_worker_stopped_cleanly_removes_its_row_and_abandons_nothing(
    workers: WorkerProcesses, raw_conn: connection
) -> None:
    worker = workers.python_worker(["default"], "clean", HEARTBEAT)
    worker.wait_for_log("*** Listening for work on default")
    job = Queue().enqueue(jobs.say_hello)
    wait_until(lambda: status(job) == JobStatus.FINISHED)
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0
    assert not WorkerStore.objects.exists()
    assert scalar(raw_conn, "SELECT count(*) FROM pq_job WHERE status = 'started'") == 0


# The database goes away


def terminate_other_backends(raw_conn: connection) -> int:
    """Terminate every client backend of the test database but ``raw_conn``'s own.

    The worker's connection is among them whatever it last ran; this process's Django
    connections are closed first and reopen on next use.
    """
    connections.close_all()
    with raw_conn.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'"
        )
        return int(cursor.fetchone()[0])


def test_idle_worker_reconnects_after_its_backend_is_terminated(
    workers: WorkerProcesses, tmp_path: Path, raw_conn: connection
) -> None:
    marker = tmp_path / "marker"
    worker = workers.pqworker("default", "--name=w1")
    worker.wait_for_log("*** Listening for work on default")
    first = Queue().enqueue(jobs.write_marker, str(marker), "first")
    wait_until(lambda: status(first) == JobStatus.FINISHED, what="the first job")
    worker.wait_for_log("*** Listening for work on default", count=2)
    time.sleep(0.5)

    assert terminate_other_backends(raw_conn) >= 1
    worker.wait_for_log("lost its database connection", timeout=10)
    worker.wait_for_log("Worker w1 reconnected", timeout=15)

    second = Queue().enqueue(jobs.write_marker, str(marker), "second")
    wait_until(lambda: status(second) == JobStatus.FINISHED, timeout=15, what="the second job")

    assert lines(marker) == ["first", "second"], "a job was lost or run twice"
    assert Job.fetch(first.pk).status == JobStatus.FINISHED
    assert WorkerStore.objects.filter(name="w1").exists()
    assert worker.popen.poll() is None


def test_worker_losing_its_backend_during_a_job_stores_the_result_once(
    workers: WorkerProcesses, tmp_path: Path, raw_conn: connection
) -> None:
    marker = tmp_path / "marker"
    worker = workers.pqworker("default", "--name=w1")
    worker.wait_for_log("*** Listening for work on default")
    job = Queue().enqueue(jobs.sleep_then_mark, 2, str(marker))
    after = Queue().enqueue(jobs.write_marker, str(marker), "after")
    wait_until(lambda: lines(marker) == ["started"], what="the job to start")

    assert terminate_other_backends(raw_conn) >= 1

    wait_until(lambda: status(after) == JobStatus.FINISHED, timeout=20, what="both jobs")
    done = Job.fetch(job.pk)
    assert done.status == JobStatus.FINISHED, done.exc_info
    assert done.worker == "w1"
    assert lines(marker) == ["started", "finished", "after"]
    assert "Worker w1 reconnected" in worker.log()


def test_worker_keeps_retrying_while_the_database_refuses_it(
    workers: WorkerProcesses, tmp_path: Path, raw_conn: connection, dsn: str
) -> None:
    """Connections refused for a while (database in maintenance): the worker backs off, retries."""
    marker = tmp_path / "marker"
    database = parse_dsn(dsn)["dbname"]
    worker = workers.pqworker("default", "--name=w1")
    worker.wait_for_log("*** Listening for work on default")
    with closing(psycopg2.connect(make_dsn(dsn, dbname="postgres"))) as admin:
        admin.autocommit = True
        allow = sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}")
        with admin.cursor() as cursor:
            cursor.execute(allow.format(sql.Identifier(database), sql.SQL("false")))
            try:
                terminate_other_backends(raw_conn)
                worker.wait_for_log("Reconnecting failed", timeout=15)
            finally:
                cursor.execute(allow.format(sql.Identifier(database), sql.SQL("true")))
    worker.wait_for_log("Worker w1 reconnected", timeout=30)
    job = Queue().enqueue(jobs.write_marker, str(marker), "back")
    wait_until(lambda: status(job) == JobStatus.FINISHED, timeout=15)
    assert lines(marker) == ["back"]


def expired_result(raw_conn: connection) -> int:
    """Store a finished job whose result TTL ran out a second ago; return its id."""
    job = Queue().enqueue(jobs.say_hello, "old")
    with raw_conn.cursor() as cursor:
        cursor.execute(
            "UPDATE pq_job SET status = 'finished', ended_at = now(),"
            " expires_at = now() - interval '1 second' WHERE id = %s",
            [job.pk],
        )
    return job.pk


def test_a_burst_worker_deletes_due_results_before_it_exits(raw_conn: connection) -> None:
    job_id = expired_result(raw_conn)
    Worker(["default"], name="burst").work(burst=True)
    assert not Job.objects.filter(pk=job_id).exists()


def test_a_worker_woken_more_often_than_its_heartbeat_still_reaps_and_expires(
    workers: WorkerProcesses, tmp_path: Path, raw_conn: connection
) -> None:
    survivor = workers.python_worker(["other"], "survivor", HEARTBEAT)
    survivor.wait_for_log("*** Listening for work on other")
    _, job, marker = kill_worker_during_a_job(workers, tmp_path)
    expired_id = expired_result(raw_conn)
    other = Queue("other")

    def cleaned_up() -> bool:
        other.enqueue(jobs.say_hello, "trickle")  # a wake-up every 0.1 s, under the heartbeat
        return status(job) == JobStatus.FAILED and not Job.objects.filter(pk=expired_id).exists()

    deadline = time.monotonic() + 10
    while not cleaned_up():
        assert time.monotonic() < deadline, "the survivor neither reaped nor expired in 10 s"
        time.sleep(0.1)
    assert Job.fetch(job.pk).exc_info.startswith("AbandonedJob")
    assert lines(marker) == ["started"]


def test_a_worker_restarted_with_its_name_after_a_kill_takes_the_name_over(
    workers: WorkerProcesses, tmp_path: Path
) -> None:
    _, job, marker = kill_worker_during_a_job(workers, tmp_path)
    after = Queue().enqueue(jobs.say_hello, "again")

    Worker(["default"], name="doomed").work(burst=True)  # at once, not 2 s later

    failed = Job.fetch(job.pk)
    assert failed.status == JobStatus.FAILED
    assert failed.exc_info.startswith("AbandonedJob"), failed.exc_info
    assert lines(marker) == ["started"], "the dead worker's job was run again"
    assert Job.fetch(after.pk).result == "Hi there, again!"


def test_a_new_process_with_a_dead_ones_name_host_and_pid_fails_its_job_not_reruns_it(
    raw_conn: connection,
) -> None:
    # A container restarted within the heartbeat TTL: same hostname, same pid (1), a new
    # process. Its predecessor's registration and started job are still there.
    worker = Worker(["default"], name="container")
    old = Queue().enqueue(jobs.say_hello, "old")
    with raw_conn.cursor() as cursor:
        cursor.execute(
            "SELECT pq_register_worker('container', ARRAY['default'], 60, %s, %s, '{}',"
            " 'token-of-the-dead-process')",
            [worker.identity.hostname, worker.identity.pid],
        )
        cursor.execute("SELECT id FROM pq_dequeue(ARRAY['default'], 'container')")
        assert cursor.fetchone() == (old.pk,)
    new = Queue().enqueue(jobs.say_hello, "new")

    worker.work(burst=True)

    failed = Job.fetch(old.pk)
    assert failed.status == JobStatus.FAILED, "the dead process's job was run again"
    assert failed.exc_info.startswith("AbandonedJob"), failed.exc_info
    assert Job.fetch(new.pk).result == "Hi there, new!"


def test_a_worker_reaped_while_alive_registers_again_before_claiming(
    caplog: pytest.LogCaptureFixture,
) -> None:
    Queue().enqueue(jobs.forget_worker, "reaped-alive")
    after = Queue().enqueue(jobs.say_hello, "after")

    Worker(["default"], name="reaped-alive").work(burst=True)

    assert Job.fetch(after.pk).result == "Hi there, after!"
    assert Job.fetch(after.pk).worker == "reaped-alive"
    assert "was not registered any more; registering again" in caplog.text


@pytest.mark.parametrize("fork", [True, False], ids=["forking", "simple"])
def test_a_result_for_a_job_failed_meanwhile_is_logged_not_lost_silently(
    fork: bool, caplog: pytest.LogCaptureFixture
) -> None:
    job = Queue().enqueue(jobs.be_abandoned, "partitioned")

    Worker(["default"], name="partitioned", fork=fork).work(burst=True)

    failed = Job.fetch(job.pk)
    assert failed.status == JobStatus.FAILED
    assert failed.exc_info.startswith("AbandonedJob"), failed.exc_info
    warning = (
        f"pq_finish_many: the outcome of job(s) {job.pk} was not stored: not started by"
        " worker partitioned any more"
    )
    assert caplog.text.count(warning) == 1, caplog.text
