"""Scheduled and repeating jobs on real forking ``pqworker`` subprocesses.

The workers here poll only every PQ_DEFAULT_WORKER_TTL seconds (420 by default; the test
settings leave it so): a scheduled job that runs on time was waited for (pq_next_due) or
announced (the insert's NOTIFY), not found by a poll. Runs record their start time with
tests.jobs.record_span ("start <n> <time>" lines), one O_APPEND write each.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from psycopg2.extensions import connection

import pq
from pq import conf
from pq.models import Job, JobStatus
from pq.queue import Queue
from tests import jobs
from tests.workerprocs import WorkerProcess, WorkerProcesses, wait_until

LATE = 1.0  # seconds a run may start after its due time (wake-up, claim, fork)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[WorkerProcesses]:
    with WorkerProcesses(tmp_path) as started:
        yield started


def started_worker(workers: WorkerProcesses) -> WorkerProcess:
    """Start a pqworker on 'default' and wait until it listens (then sleeps: no work)."""
    worker = workers.pqworker("default")
    worker.wait_for_log("*** Listening for work on default")
    return worker


def starts(path: Path) -> list[float]:
    """The start times record_span wrote to ``path``, in order."""
    if not path.exists():
        return []
    return [
        float(line.split()[2])
        for line in path.read_text(encoding="ascii").splitlines()
        if line.startswith("start ")
    ]


def runs(raw_conn: connection) -> list[tuple[int, str, datetime, datetime | None, str | None]]:
    """(id, status, scheduled_for, repeat_from, worker) of every job, by due time."""
    with raw_conn.cursor() as cursor:
        cursor.execute(
            "SELECT id, status, scheduled_for, repeat_from, worker FROM pq_job"
            " ORDER BY scheduled_for, id"
        )
        return cursor.fetchall()


def ended(raw_conn: connection, status: str) -> int:
    with raw_conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pq_job WHERE status = %s", [status])
        return cursor.fetchone()[0]


def test_the_worker_poll_interval_is_long() -> None:
    """What makes the timing tests below mean something: no poll within a test."""
    assert conf.default_worker_ttl() >= 60


def test_a_repeating_job_runs_once_per_repeat_each_run_its_own_job(
    workers: WorkerProcesses, tmp_path: Path, raw_conn: connection
) -> None:
    log = tmp_path / "runs"
    worker = started_worker(workers)
    first = datetime.now(UTC) + timedelta(seconds=0.5)
    job = Queue().schedule_call(
        first, jobs.record_span, args=(str(log), 0, 0), repeat=3, interval=1
    )
    assert job.status == JobStatus.SCHEDULED

    wait_until(lambda: ended(raw_conn, "finished") == 4, timeout=15, what="four finished runs")
    time.sleep(1.5)  # a fifth run would be due by now
    rows = runs(raw_conn)
    assert [status for _, status, *_ in rows] == ["finished"] * 4, worker.log()
    assert rows[0][0] == job.pk
    assert len({job_id for job_id, *_ in rows}) == 4
    offsets = [(due - origin).total_seconds() for _, _, due, origin, _ in rows]
    assert offsets == [0.0, 1.0, 2.0, 3.0]
    ran = starts(log)
    assert len(ran) == 4
    for (_, _, due, _, _), start in zip(rows, ran, strict=True):
        assert due.timestamp() <= start <= due.timestamp() + LATE, worker.log()


def test_a_sleeping_worker_wakes_for_a_job_scheduled_after_it_went_to_sleep(
    workers: WorkerProcesses, tmp_path: Path
) -> None:
    log = tmp_path / "runs"
    worker = started_worker(workers)
    time.sleep(0.5)  # asleep with nothing scheduled: waiting up to its poll interval
    due = datetime.now(UTC) + timedelta(seconds=2)
    Queue().schedule(due, jobs.record_span, str(log), 0, 0)

    (start,) = wait_until(lambda: starts(log), timeout=10, what="the scheduled run")
    assert due.timestamp() <= start <= due.timestamp() + LATE, worker.log()


def test_a_worker_started_after_the_job_was_scheduled_sleeps_until_it_is_due(
    workers: WorkerProcesses, tmp_path: Path
) -> None:
    log = tmp_path / "runs"
    due = datetime.now(UTC) + timedelta(seconds=3)
    Queue().schedule(due, jobs.record_span, str(log), 0, 0)
    worker = started_worker(workers)

    (start,) = wait_until(lambda: starts(log), timeout=10, what="the scheduled run")
    assert due.timestamp() <= start <= due.timestamp() + LATE, worker.log()


def test_a_sleeping_worker_replans_for_an_earlier_job(
    workers: WorkerProcesses, tmp_path: Path
) -> None:
    """Asleep until a job due in 5 s, the worker hears of one due in 2 s and runs it then."""
    log = tmp_path / "runs"
    later = datetime.now(UTC) + timedelta(seconds=5)
    Queue().schedule(later, jobs.record_span, str(log), 2, 0)
    worker = started_worker(workers)
    time.sleep(0.5)
    sooner = datetime.now(UTC) + timedelta(seconds=2)
    Queue().schedule(sooner, jobs.record_span, str(log), 1, 0)

    first, second = wait_until(lambda: len(starts(log)) == 2 and starts(log), timeout=12)
    assert sooner.timestamp() <= first <= sooner.timestamp() + LATE, worker.log()
    assert later.timestamp() <= second <= later.timestamp() + LATE, worker.log()
    lines = (tmp_path / "runs").read_text(encoding="ascii").splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["start", "1"],
        ["end", "1"],
        ["start", "2"],
        ["end", "2"],
    ]


@pytest.mark.parametrize("name", [None, "ticker"], ids=["unnamed", "named"])
def test_several_workers_run_each_tick_once(
    workers: WorkerProcesses, tmp_path: Path, raw_conn: connection, name: str | None
) -> None:
    log = tmp_path / "runs"
    started = [workers.pqworker("default") for _ in range(3)]
    for worker in started:
        worker.wait_for_log("*** Listening for work on default")
    first = datetime.now(UTC) + timedelta(seconds=0.5)
    Queue().schedule_call(
        first, jobs.record_span, args=(str(log), 0, 0), repeat=-1, interval=1, name=name
    )
    time.sleep(5.2)
    if name:
        assert pq.unschedule(name) is True
    else:
        with raw_conn.cursor() as cursor:  # stop the schedule: its pending run goes
            cursor.execute("DELETE FROM pq_job WHERE status = 'scheduled'")
    wait_until(lambda: ended(raw_conn, "started") == 0, timeout=10, what="the last run to end")

    rows = runs(raw_conn)
    logs = "\n".join(worker.log() for worker in started)
    assert len(rows) >= 5, logs
    assert {status for _, status, *_ in rows} == {"finished"}, logs
    ticks = Counter(due for _, _, due, _, _ in rows)
    assert max(ticks.values()) == 1, f"a tick ran more than once: {ticks}"
    # On the grid, each tick once (a run claimed over a second late would skip a tick: the
    # schedule goes on from now, so the ticks need not be consecutive under heavy load).
    offsets = [(due - origin).total_seconds() for _, _, due, origin, _ in rows]
    assert offsets[0] == 0.0 and all(o == int(o) for o in offsets), offsets
    assert offsets == sorted(set(offsets)), offsets
    assert len(starts(log)) == len(rows)  # each job ran once


def test_a_failing_run_keeps_its_schedule(
    workers: WorkerProcesses, tmp_path: Path, raw_conn: connection
) -> None:
    log = tmp_path / "runs"
    worker = started_worker(workers)
    first = datetime.now(UTC) + timedelta(seconds=0.3)
    Queue().schedule_call(first, jobs.record_then_fail, args=(str(log),), repeat=2, interval=1)

    wait_until(lambda: ended(raw_conn, "failed") == 3, timeout=15, what="three failed runs")
    time.sleep(1.3)
    assert len(log.read_text(encoding="ascii").splitlines()) == 3
    failed = list(Job.objects.order_by("scheduled_for"))
    assert [(job.status, job.queue, job.origin) for job in failed] == [
        ("failed", "failed", "default")
    ] * 3, worker.log()
    assert all("this scheduled run fails on purpose" in job.exc_info for job in failed)
    assert [(job.scheduled_for - job.repeat_from).total_seconds() for job in failed] == [
        0.0,
        1.0,
        2.0,
    ]
