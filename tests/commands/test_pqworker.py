"""manage.py pqworker: its arguments and errors (the worker itself is tested in test_worker*)."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from psycopg2.extensions import connection

from pq import sql
from pq.models import Job, JobStatus, WorkerStore
from pq.queue import Queue
from tests import jobs
from tests.claims import claim

ROOT = Path(__file__).resolve().parents[2]


def pqworker(*args: str) -> str:
    out = StringIO()
    call_command("pqworker", *args, stdout=out)
    return out.getvalue()


def select(raw_conn: connection, query: str, *params: object) -> list[tuple]:
    with raw_conn.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def manage_py(*args: str) -> list[str]:
    return [sys.executable, "-m", "django", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}


def test_unknown_connection_is_a_command_error() -> None:
    with pytest.raises(CommandError) as caught:
        pqworker("--burst", "--connection=nope")
    message = str(caught.value)
    assert "'nope'" in message
    assert "default, other" in message


def test_working_on_the_failed_queue_is_a_command_error(raw_conn: connection) -> None:
    with pytest.raises(CommandError, match="failed queue"):
        pqworker("failed", "--burst")
    with pytest.raises(CommandError, match="failed queue"):
        pqworker("default", "failed", "--burst")
    assert select(raw_conn, "SELECT count(*) FROM pq_worker") == [(0,)]


def test_sentry_dsn_without_sentry_sdk_is_a_command_error() -> None:
    if importlib.util.find_spec("sentry_sdk") is not None:
        pytest.skip("sentry-sdk is installed")
    with pytest.raises(CommandError, match="pip install sentry-sdk"):
        pqworker("--burst", "--sentry-dsn=https://key@sentry.example/1")


def test_burst_without_queues_works_on_every_queue_but_failed(raw_conn: connection) -> None:
    ran = [Queue(name).enqueue(jobs.say_hello, name).pk for name in ("alpha", "beta", "default")]
    failed = Queue("gamma").enqueue(jobs.div_by_zero)
    with connections["default"].cursor() as cursor:
        assert claim(cursor, ["gamma"], "earlier-worker")["id"] == failed.pk
        assert sql.fail(cursor, failed.pk, "earlier-worker", "ZeroDivisionError")
        sql.unregister_worker(cursor, "earlier-worker")  # that worker is gone
    # A job waiting in the failed queue itself (only SQL can put one there) is not taken.
    [(stray,)] = select(
        raw_conn,
        "INSERT INTO pq_job (queue, origin, func) VALUES ('failed', 'failed',"
        " 'tests.jobs.say_hello') RETURNING id",
    )

    pqworker("--burst", "--name=all-queues")

    for job_id, name in zip(ran, ("alpha", "beta", "default"), strict=True):
        job = Job.fetch(job_id)
        assert job.status == JobStatus.FINISHED, job.exc_info
        assert job.result == f"Hi there, {name}!"
        assert job.worker == "all-queues"
    assert Job.fetch(failed.pk).status == JobStatus.FAILED
    assert Job.fetch(failed.pk).queue == "failed"
    assert (Job.fetch(stray).status, Job.fetch(stray).worker) == (JobStatus.QUEUED, None)
    # A burst worker unregisters when it is done.
    assert select(raw_conn, "SELECT count(*) FROM pq_worker") == [(0,)]


def test_queues_are_worked_in_the_order_given(tmp_path: Path, raw_conn: connection) -> None:
    marker = tmp_path / "order.txt"
    for n in range(2):
        Queue("low").enqueue(jobs.write_marker, str(marker), f"low{n}")
    for n in range(2):
        Queue("high").enqueue(jobs.write_marker, str(marker), f"high{n}")
    Queue("other").enqueue(jobs.write_marker, str(marker), "other")

    pqworker("high", "low", "--burst")

    assert marker.read_text().split() == ["high0", "high1", "low0", "low1"]
    assert select(raw_conn, "SELECT status FROM pq_job WHERE queue = 'other'") == [("queued",)]


def test_burst_on_empty_queues_returns() -> None:
    pqworker("nothing-here", "--burst")
    assert WorkerStore.objects.count() == 0


def test_name_sets_the_workers_name() -> None:
    job = Queue().enqueue(jobs.say_hello)
    pqworker("default", "--burst", "--name=doug")
    assert Job.fetch(job.pk).worker == "doug"


def test_worker_on_another_connection() -> None:
    job = Queue(connection="other").enqueue(jobs.add, 1, 2)
    pqworker("default", "--burst", "--connection=other")
    assert Job.fetch(job.pk).result == 3


def test_a_name_in_use_is_a_command_error_that_leaves_the_other_worker_alone(
    raw_conn: connection,
) -> None:
    job = Queue().enqueue(jobs.say_hello)
    with connections["default"].cursor() as cursor:
        sql.register_worker(cursor, "dup", ["default"], 60, "elsewhere.example", 1)
        assert claim(cursor, ["default"], "dup")["id"] == job.pk

    with pytest.raises(CommandError, match="dup"):
        pqworker("default", "--burst", "--name=dup")

    # The live worker of that name is still registered, and still owns its job.
    assert select(raw_conn, "SELECT name, hostname FROM pq_worker") == [
        ("dup", "elsewhere.example")
    ]
    assert (Job.fetch(job.pk).status, Job.fetch(job.pk).worker) == (JobStatus.STARTED, "dup")


def test_terminate_without_workers_returns_at_once() -> None:
    out = pqworker("--terminate")
    assert out.splitlines() == [
        "Asked 0 worker(s) to stop; waiting for them",
        "All workers stopped",
    ]


def test_terminate_stops_a_running_worker(raw_conn: connection) -> None:
    worker = subprocess.Popen(
        manage_py("pqworker", "default", "--name=to-terminate"),
        cwd=ROOT,
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not select(raw_conn, "SELECT 1 FROM pq_worker WHERE name = 'to-terminate'"):
            assert worker.poll() is None, worker.stderr.read()
            assert time.monotonic() < deadline, "the worker did not register"
            time.sleep(0.1)

        out = pqworker("--terminate")

        assert out.splitlines() == [
            "Asked 1 worker(s) to stop; waiting for them",
            "All workers stopped",
        ]
        assert worker.wait(timeout=30) == 0
        assert select(raw_conn, "SELECT count(*) FROM pq_worker") == [(0,)]
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()


def test_terminate_does_not_wait_for_dead_workers(raw_conn: connection) -> None:
    # A worker killed with SIGKILL leaves its row behind, its heartbeat expiring.
    with connections["default"].cursor() as cursor:
        sql.register_worker(cursor, "dead", ["default"], 1, "gone.example", 1)
    time.sleep(1.5)
    try:
        done = subprocess.run(
            manage_py("pqworker", "--terminate"),
            cwd=ROOT,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"pqworker --terminate still waited for a dead worker after 20 s: {exc}")
    assert done.returncode == 0, done.stderr
    assert "All workers stopped" in done.stdout


def test_from_the_command_line() -> None:
    job = Queue("cli").enqueue(jobs.add, 2, 3)
    done = subprocess.run(
        manage_py("pqworker", "cli", "--burst"),
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert Job.fetch(job.pk).result == 5
    assert "Listening for work on cli" in done.stderr

    refused = subprocess.run(
        manage_py("pqworker", "failed", "--burst"),
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "CommandError" in refused.stderr and "failed queue" in refused.stderr
