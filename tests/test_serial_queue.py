"""Serial queues on real forking workers: one job at a time, in order, never blocked for good."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg2.extensions import connection

from pq import Queue, SerialQueue
from pq.models import Job, JobStatus
from tests import jobs
from tests.workerprocs import WorkerProcesses, kill_hard, wait_until

HEARTBEAT = 0.5  # the worker's TTL is 3 heartbeats, rounded up: 2 s


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[WorkerProcesses]:
    with WorkerProcesses(tmp_path) as started:
        yield started


def spans(path: Path) -> dict[int, tuple[float, float]]:
    """Read record_span's lines: {number: (start, end)} of every job that ended."""
    starts: dict[int, float] = {}
    ends: dict[int, float] = {}
    for line in path.read_text(encoding="ascii").splitlines():
        kind, number, at = line.split()
        (starts if kind == "start" else ends)[int(number)] = float(at)
    return {number: (starts[number], ends[number]) for number in ends}


def enqueue_from_sql(raw_conn: connection, queue: str, *args: object) -> int:
    with raw_conn.cursor() as cursor:
        cursor.execute(
            "SELECT pq_enqueue(%s, 'tests.jobs.record_span', %s::jsonb)",
            [queue, json.dumps(list(args))],
        )
        return cursor.fetchone()[0]


def test_workers_run_a_serial_queue_one_job_at_a_time_in_order_while_others_flow(
    workers: WorkerProcesses, tmp_path: Path, raw_conn: connection
) -> None:
    serial_log, flow_log = tmp_path / "serial", tmp_path / "flow"
    started = [workers.pqworker(), workers.pqworker(), workers.pqworker("s", "flow")]
    for worker in started:
        worker.wait_for_log("*** Listening for work")
    serial = SerialQueue("s")
    flow = Queue("flow")

    number = 0
    for burst in range(4):  # bursts queue jobs up behind a running one; idle workers race
        for _ in range(3):
            if number % 2:
                enqueue_from_sql(raw_conn, "s", str(serial_log), number, 0.15)
            else:
                serial.enqueue(jobs.record_span, str(serial_log), number, 0.15)
            number += 1
        if burst == 0:
            for flow_number in range(4):
                flow.enqueue(jobs.record_span, str(flow_log), flow_number, 0.5)
        time.sleep(0.3)

    wait_until(lambda: len(spans(serial_log)) == number, timeout=30, what="the serial jobs")
    wait_until(lambda: len(spans(flow_log)) == 4, timeout=30, what="the flow jobs")

    ran = spans(serial_log)
    by_start = sorted(ran, key=lambda n: ran[n][0])
    assert by_start == list(range(number)), "serial jobs started out of enqueue order"
    for earlier, later in zip(by_start, by_start[1:], strict=False):
        assert ran[earlier][1] <= ran[later][0], f"serial jobs {earlier} and {later} overlapped"
    overlapping = [
        (f, s)
        for f, (f_start, f_end) in spans(flow_log).items()
        for s, (s_start, s_end) in ran.items()
        if f_start < s_end and s_start < f_end
    ]
    assert overlapping, "no flow job ran while a serial job ran: other queues must keep flowing"
    unfinished = Job.objects.exclude(status=JobStatus.FINISHED)
    wait_until(lambda: not unfinished.exists(), what="the workers to store every result")


@pytest.mark.parametrize(
    ("first", "ended"),
    [
        ((jobs.say_hello, (), None), JobStatus.FINISHED),
        ((jobs.div_by_zero, (), None), JobStatus.FAILED),
        ((jobs.kill_self, (), None), JobStatus.FAILED),
        ((jobs.sleep, (60,), 1), JobStatus.FAILED),
    ],
    ids=["finishes", "raises", "horse-dies", "times-out"],
)
def test_the_next_job_of_a_serial_queue_runs_once_the_running_one_ends(
    workers: WorkerProcesses, tmp_path: Path, first: tuple, ended: JobStatus
) -> None:
    func, args, timeout = first
    queue = SerialQueue("s")
    head = queue.enqueue_call(func, args=args, timeout=timeout)
    nxt = queue.enqueue(jobs.record_span, str(tmp_path / "next"), 1, 0)

    worker = workers.pqworker("s", "--burst")
    assert worker.wait(timeout=30) == 0, worker.log()

    assert Job.fetch(head.pk).status == ended
    assert Job.fetch(nxt.pk).status == JobStatus.FINISHED, worker.log()


def test_a_dead_workers_serial_job_stops_blocking_its_queue_when_its_heartbeat_expires(
    workers: WorkerProcesses, tmp_path: Path
) -> None:
    marker, next_log = tmp_path / "marker", tmp_path / "next"
    doomed = workers.python_worker(["s"], "doomed", HEARTBEAT)
    doomed.wait_for_log("*** Listening for work on s")
    queue = SerialQueue("s")
    head = queue.enqueue(jobs.sleep_then_mark, 60, str(marker))
    wait_until(lambda: marker.exists(), what="the long job to start")
    survivor = workers.python_worker(["s"], "survivor", HEARTBEAT)
    survivor.wait_for_log("*** Listening for work on s")
    nxt = queue.enqueue(jobs.record_span, str(next_log), 1, 0)

    time.sleep(1.0)  # the survivor is idle, but the serial queue is busy
    assert not next_log.exists(), "a second job of a serial queue ran beside the first"

    horses = wait_until(doomed.horses, what="the horse")
    workers.orphans.extend(horses)
    doomed.send(signal.SIGKILL)  # as if its host died: no shutdown code runs
    for horse in horses:
        kill_hard(horse)
    killed_at = time.monotonic()

    wait_until(lambda: next_log.exists(), timeout=15, what="the next serial job to run")
    assert time.monotonic() - killed_at < 6  # TTL 2 s, then the survivor's next heartbeat
    failed = Job.fetch(head.pk)
    assert failed.status == JobStatus.FAILED
    assert failed.exc_info.startswith("AbandonedJob"), failed.exc_info
    wait_until(lambda: Job.fetch(nxt.pk).status == JobStatus.FINISHED, what="the next job")
    assert Job.fetch(nxt.pk).worker == "survivor"
