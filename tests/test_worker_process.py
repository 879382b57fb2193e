"""Workers as real processes (``manage.py pqworker``): listening, signals, stop requests.

Each worker runs as a subprocess with its log in a file; the ``workers`` fixture kills any
still running (and their horses) when the test ends, so none outlives its test.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg2.extensions import connection

from pq import Queue
from pq.models import Job, JobStatus, WorkerStore
from tests import jobs
from tests.workerprocs import (
    ROOT,
    WorkerProcess,
    WorkerProcesses,
    pid_alive,
    wait_until,
    worker_env,
)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[WorkerProcesses]:
    with WorkerProcesses(tmp_path) as started:
        yield started


def registered(name: str) -> bool:
    return WorkerStore.objects.filter(name=name).exists()


def start_idle(workers: WorkerProcesses, name: str, *queues: str) -> WorkerProcess:
    """Start ``pqworker QUEUES --name=NAME`` and wait until it is registered and listening."""
    worker = workers.pqworker(*(queues or ("default",)), f"--name={name}")
    worker.wait_for_log("*** Listening for work on")
    wait_until(lambda: registered(name), what=f"worker {name} to register")
    return worker


def status(job: Job) -> str:
    return Job.fetch(job.pk).status


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def manage(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# Listening


def test_idle_worker_is_woken_by_notify_and_runs_the_job(workers: WorkerProcesses) -> None:
    worker = start_idle(workers, "w1")
    time.sleep(1)  # well into its wait: PQ_DEFAULT_WORKER_TTL (420 s) is its only poll
    assert "Got " not in worker.log()

    enqueued_at = time.monotonic()
    job = Queue().enqueue(jobs.say_hello, "You")
    wait_until(lambda: status(job) == JobStatus.FINISHED, timeout=10, what="the job to finish")
    took = time.monotonic() - enqueued_at

    assert took < 5, f"job took {took:.1f} s to run: the worker was not woken by NOTIFY"
    assert Job.fetch(job.pk).result == "Hi there, You!"
    assert Job.fetch(job.pk).worker == "w1"
    worker.wait_for_log("*** Listening for work on default", count=2)
    log = worker.log()
    assert "Got say_hello('You') from default" in log
    assert "Job result = 'Hi there, You!'" in log
    assert worker.popen.poll() is None, "a worker without --burst keeps running"


def test_worker_ignores_notifications_for_other_queues(workers: WorkerProcesses) -> None:
    worker = start_idle(workers, "w1", "mine")
    other = Queue("theirs").enqueue(jobs.say_hello)
    time.sleep(1)
    assert status(other) == JobStatus.QUEUED
    mine = Queue("mine").enqueue(jobs.say_hello, "me")
    wait_until(lambda: status(mine) == JobStatus.FINISHED, timeout=10)
    assert status(other) == JobStatus.QUEUED
    assert "Got say_hello('me') from mine" in worker.log()


def test_worker_on_all_queues_is_woken_for_a_queue_created_after_it_started(
    workers: WorkerProcesses,
) -> None:
    worker = workers.pqworker("--name=all")
    worker.wait_for_log("*** Listening for work on")
    wait_until(lambda: registered("all"))
    assert "brand-new" not in worker.log()
    time.sleep(0.5)
    job = Queue("brand-new").enqueue(jobs.add, 20, 22)
    wait_until(lambda: status(job) == JobStatus.FINISHED, timeout=10)
    assert Job.fetch(job.pk).result == 42


def test_burst_worker_command_runs_the_jobs_and_exits(workers: WorkerProcesses) -> None:
    first = Queue().enqueue(jobs.say_hello, "one")
    second = Queue().enqueue(jobs.say_hello, "two")
    worker = workers.pqworker("default", "--burst", "--name=bursty")
    assert worker.wait(timeout=30) == 0, worker.log()
    assert Job.fetch(first.pk).result == "Hi there, one!"
    assert Job.fetch(second.pk).result == "Hi there, two!"
    assert not registered("bursty")


def test_two_workers_cannot_share_a_name(workers: WorkerProcesses) -> None:
    first = start_idle(workers, "twin")
    pid = WorkerStore.objects.get(name="twin").pid
    second = workers.pqworker("default", "--name=twin")
    assert second.wait(timeout=30) != 0
    assert "a live worker named twin is already registered" in second.log()
    # the refused worker must leave the live one's registration alone
    assert WorkerStore.objects.filter(name="twin", pid=pid).exists(), second.log()
    assert first.popen.poll() is None


def test_refused_duplicate_worker_does_not_fail_the_live_workers_job(
    workers: WorkerProcesses, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    first = start_idle(workers, "twin")
    job = Queue().enqueue(jobs.sleep_then_mark, 3, str(marker))
    wait_until(lambda: lines(marker) == ["started"], what="the job to start")

    second = workers.pqworker("default", "--name=twin")
    assert second.wait(timeout=30) != 0

    running = Job.fetch(job.pk)
    assert running.status == JobStatus.STARTED, running.exc_info
    wait_until(lambda: status(job) != JobStatus.STARTED, timeout=15)
    finished = Job.fetch(job.pk)
    assert finished.status == JobStatus.FINISHED, finished.exc_info
    assert lines(marker) == ["started", "finished"]
    assert first.popen.poll() is None


# Signals


def test_sigterm_stops_an_idle_worker(workers: WorkerProcesses) -> None:
    worker = start_idle(workers, "w1")
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0, worker.log()
    assert not registered("w1")
    assert "Worker w1 stopped after 0 job(s)" in worker.log()


def test_sigint_stops_an_idle_worker(workers: WorkerProcesses) -> None:
    worker = start_idle(workers, "w1")
    worker.send(signal.SIGINT)
    assert worker.wait(timeout=10) == 0, worker.log()
    assert not registered("w1")


def test_sigterm_during_a_job_lets_it_finish_then_stops(
    workers: WorkerProcesses, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    worker = start_idle(workers, "w1")
    job = Queue().enqueue(jobs.sleep_then_mark, 2, str(marker))
    waiting = Queue().enqueue(jobs.say_hello, "not me")
    wait_until(lambda: lines(marker) == ["started"], what="the job to start")

    worker.send(signal.SIGTERM)

    assert worker.wait(timeout=20) == 0, worker.log()
    assert lines(marker) == ["started", "finished"]
    assert status(job) == JobStatus.FINISHED
    assert status(waiting) == JobStatus.QUEUED, "the worker took another job after SIGTERM"
    assert not registered("w1")
    assert "stopping after the current job" in worker.log()


def test_second_sigterm_kills_the_horse_and_fails_the_job(
    workers: WorkerProcesses, tmp_path: Path
) -> None:
    pid_file = tmp_path / "horse.pid"
    worker = start_idle(workers, "w1")
    job = Queue().enqueue(jobs.write_pid_then_sleep, str(pid_file), 60)
    horse = wait_until(lambda: lines(pid_file), what="the horse to start")
    horse_pid = int(horse[0])
    workers.orphans.append(horse_pid)
    assert horse_pid in worker.horses()

    worker.send(signal.SIGTERM)
    time.sleep(0.5)
    assert pid_alive(horse_pid), "the first SIGTERM must let the job run on"
    worker.send(signal.SIGTERM)

    assert worker.wait(timeout=15) == 0, worker.log()
    assert not pid_alive(horse_pid)
    stopped = Job.fetch(job.pk)
    assert stopped.status == JobStatus.FAILED
    assert stopped.queue == "failed"
    assert "WorkerStopped" in stopped.exc_info
    assert not registered("w1")


# Stop requests (admin flag, pq_stop_workers, --terminate)


def test_stop_flag_stops_the_worker_after_its_current_job(
    workers: WorkerProcesses, tmp_path: Path, raw_conn: connection
) -> None:
    marker = tmp_path / "marker"
    worker = start_idle(workers, "w1")
    job = Queue().enqueue(jobs.sleep_then_mark, 2, str(marker))
    waiting = Queue().enqueue(jobs.say_hello, "not me")
    wait_until(lambda: lines(marker) == ["started"], what="the job to start")

    with raw_conn.cursor() as cursor:
        cursor.execute("UPDATE pq_worker SET stop = true WHERE name = 'w1'")

    assert worker.wait(timeout=20) == 0, worker.log()
    assert status(job) == JobStatus.FINISHED
    assert lines(marker) == ["started", "finished"]
    assert status(waiting) == JobStatus.QUEUED
    assert not registered("w1")


def test_pq_stop_workers_stops_idle_workers_at_once(
    workers: WorkerProcesses, raw_conn: connection
) -> None:
    first, second = start_idle(workers, "w1"), start_idle(workers, "w2")
    with raw_conn.cursor() as cursor:
        cursor.execute("SELECT pq_stop_workers()")
        assert cursor.fetchone()[0] == 2
    started = time.monotonic()
    assert first.wait(timeout=10) == 0, first.log()
    assert second.wait(timeout=10) == 0, second.log()
    # their first heartbeat is 10 s after they started: stopping well before means NOTIFY woke them
    assert time.monotonic() - started < 4
    assert not WorkerStore.objects.exists()


def test_pq_stop_workers_can_name_the_worker(
    workers: WorkerProcesses, raw_conn: connection
) -> None:
    first, second = start_idle(workers, "w1"), start_idle(workers, "w2")
    with raw_conn.cursor() as cursor:
        cursor.execute("SELECT pq_stop_workers(ARRAY['w1'])")
    assert first.wait(timeout=10) == 0
    time.sleep(0.5)
    assert second.popen.poll() is None
    assert registered("w2") and not registered("w1")


def test_terminate_command_waits_until_every_worker_is_gone(
    workers: WorkerProcesses, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    busy = start_idle(workers, "busy")
    idle = start_idle(workers, "idle", "other")
    job = Queue().enqueue(jobs.sleep_then_mark, 2, str(marker))
    wait_until(lambda: lines(marker) == ["started"], what="the job to start")

    done = manage("pqworker", "--terminate", timeout=30)

    assert done.returncode == 0, done.stderr
    assert "Asked 2 worker(s) to stop" in done.stdout
    assert "All workers stopped" in done.stdout
    # it returned only once the busy worker had finished its job and unregistered
    assert status(job) == JobStatus.FINISHED
    assert lines(marker) == ["started", "finished"]
    assert not WorkerStore.objects.exists()
    assert busy.wait(timeout=10) == 0
    assert idle.wait(timeout=10) == 0


def test_terminate_without_workers_returns_at_once() -> None:
    done = manage("pqworker", "--terminate", timeout=30)
    assert done.returncode == 0, done.stderr
    assert "Asked 0 worker(s) to stop" in done.stdout
