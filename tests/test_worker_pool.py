"""pqworker --concurrency N: one supervisor, N forking workers, restarted when they die."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg2.extensions import connection

from pq import Queue
from pq.models import Job, JobStatus
from tests import jobs
from tests.sql.helpers import fetch_all, fetch_value
from tests.workerprocs import ROOT, WorkerProcesses, kill_hard, wait_until, worker_env


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[WorkerProcesses]:
    with WorkerProcesses(tmp_path) as started:
        yield started


def worker_rows(raw_conn: connection) -> list[tuple[str, int]]:
    return fetch_all(raw_conn, "SELECT name, pid FROM pq_worker ORDER BY name")


def test_a_pool_runs_n_named_workers_that_share_the_jobs(
    workers: WorkerProcesses, raw_conn: connection
) -> None:
    pool = workers.pqworker("--concurrency", "3", "--name", "pool")
    pool.wait_for_log("*** Listening for work", count=3)
    rows = wait_until(lambda: len(worker_rows(raw_conn)) == 3 and worker_rows(raw_conn))
    assert [name for name, _ in rows] == ["pool-1", "pool-2", "pool-3"]
    assert len({pid for _, pid in rows}) == 3
    assert pool.pid not in {pid for _, pid in rows}  # the supervisor runs no jobs

    queued = [Queue().enqueue(jobs.sleep, 0.3) for _ in range(9)]
    wait_until(lambda: all(j.get_status() == JobStatus.FINISHED for j in queued), timeout=20)
    ran_on = {Job.objects.get(pk=j.pk).worker for j in queued}
    assert len(ran_on) >= 2, ran_on  # 9 jobs of 0.3 s on 3 idle workers: shared


def test_a_pool_restarts_a_worker_that_dies_under_its_name_and_fails_its_job_at_once(
    workers: WorkerProcesses, raw_conn: connection, tmp_path: Path
) -> None:
    pool = workers.pqworker("-c", "2", "--name", "pool")
    pool.wait_for_log("*** Listening for work", count=2)
    marker = tmp_path / "pid"
    job = Queue().enqueue(jobs.write_pid_then_sleep, str(marker), 60)
    wait_until(lambda: job.get_status() == JobStatus.STARTED, timeout=10)
    name = Job.objects.get(pk=job.pk).worker
    dead_pid = fetch_value(raw_conn, "SELECT pid FROM pq_worker WHERE name = %s", (name,))
    kill_hard(dead_pid)  # the worker; its horse dies with it (parent-death signal)

    pool.wait_for_log(f"Worker {name} (pid {dead_pid}) exited")
    pool.wait_for_log("*** Listening for work", count=3)
    # The restarted worker has the dead one's name: it takes it over and fails its job now,
    # not when the dead one's heartbeat would have expired (30 s).
    wait_until(lambda: job.get_status() == JobStatus.FAILED, timeout=10)
    assert "AbandonedJob" in (Job.objects.get(pk=job.pk).exc_info or "")
    rows = wait_until(lambda: len(worker_rows(raw_conn)) == 2 and worker_rows(raw_conn))
    assert [row_name for row_name, _ in rows] == ["pool-1", "pool-2"]
    assert dead_pid not in {pid for _, pid in rows}
    assert pool.popen.poll() is None  # the supervisor goes on


def test_sigterm_stops_every_worker_after_its_job_and_the_supervisor_exits_0(
    workers: WorkerProcesses, raw_conn: connection, tmp_path: Path
) -> None:
    pool = workers.pqworker("-c", "2")
    pool.wait_for_log("*** Listening for work", count=2)
    marker = tmp_path / "done"
    job = Queue().enqueue(jobs.sleep_then_mark, 1.0, str(marker))
    # Running in its horse, not only claimed (a claimed job not yet begun is put back).
    wait_until(marker.exists, timeout=10)

    pool.send(signal.SIGTERM)
    assert pool.wait(timeout=20) == 0
    assert marker.read_text().split() == ["started", "finished"]  # allowed to finish
    assert job.get_status() == JobStatus.FINISHED
    assert worker_rows(raw_conn) == []  # every worker unregistered
    assert "All 2 workers of" in pool.log()


def test_burst_pool_exits_when_the_jobs_are_done(
    workers: WorkerProcesses, raw_conn: connection
) -> None:
    queued = [Queue().enqueue(jobs.add, n, n) for n in range(6)]
    pool = workers.pqworker("-c", "2", "--burst")
    assert pool.wait(timeout=30) == 0
    assert [j.get_status() for j in queued] == [JobStatus.FINISHED] * 6


@pytest.mark.parametrize("value", ["0", "-2"])
def test_a_concurrency_below_one_is_refused_in_one_line(value: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "django", "pqworker", "--concurrency", value],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=worker_env(),
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "CommandError: --concurrency must be a whole number of workers, 1 or more, "
        f"got {int(value)}"
    ]


def test_a_burst_pool_does_not_restart_a_failing_worker_and_exits_1(
    workers: WorkerProcesses, raw_conn: connection
) -> None:
    # A worker that cannot start (its name is held by a live process elsewhere) fails; a
    # burst pool reports it instead of restarting it for ever.
    with raw_conn.cursor() as cursor:
        cursor.execute(
            "SELECT pq_register_worker('held-1', NULL, 3600, 'another-host', 1, '{}', 'x')"
        )
    pool = workers.pqworker("-c", "1", "--burst", "--name", "held")
    assert pool.wait(timeout=30) == 1
    assert pool.log().count("Started worker held-1") == 1
    assert "a worker of the pool failed" in pool.log()
