"""A job killed with its worker shows as started, in pqinfo and the admin, until the heartbeat
rule's deadline; then the next worker to start fails it as AbandonedJob, and both show that.

The rule (sql/worker.sql, README "Workers"): a worker whose heartbeat is older than its TTL
(three heartbeat intervals, rounded up) is dead; ``pq_reap_workers()``, which a worker calls
as it registers and on each heartbeat, deletes it and fails its started jobs into the
'failed' queue as ``AbandonedJob`` (never back to 'queued': the job may have run).

The TTL is the worker's ``heartbeat_interval`` times three: ``PQ_TEST_WORKER_TTL``
(``PQ_DEFAULT_WORKER_TTL``) is the idle poll interval, not this TTL, so the test starts its
workers with ``heartbeat_interval=1.0`` (a 3 s TTL) as tests/test_worker_recovery.py does.
"""

from __future__ import annotations

import io
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from psycopg2.extensions import connection

from pq import Queue
from pq.models import Job, JobStatus
from tests import jobs, test_admin
from tests.test_admin import listed
from tests.workerprocs import WorkerProcesses, kill_hard, pid_alive, wait_until

HEARTBEAT = 1.0  # TTL: 3 heartbeats, 3 s
WORKER = "doomed"

_admin_urls = test_admin._admin_urls
client = test_admin.client


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[WorkerProcesses]:
    with WorkerProcesses(tmp_path) as started:
        yield started


def pqinfo() -> dict[str, Any]:
    out = io.StringIO()
    call_command("pqinfo", "--json", stdout=out)
    return json.loads(out.getvalue())


def info_worker(report: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((w for w in report["workers"] if w["name"] == name), None)


def info_queue(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(q for q in report["queues"] if q["name"] == name)


def marks(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def scalar(raw_conn: connection, query: str) -> Any:
    with raw_conn.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchone()[0]


def test_a_job_killed_with_its_worker_is_shown_started_then_rescued(
    workers: WorkerProcesses, tmp_path: Path, client: Client, raw_conn: connection
) -> None:
    marker = tmp_path / "marker"
    worker = workers.python_worker(["default"], WORKER, HEARTBEAT)
    worker.wait_for_log("*** Listening for work on default")
    job = Queue().enqueue(jobs.sleep_then_mark, 60, str(marker))
    wait_until(lambda: marks(marker) == ["started"], what="the job to start in its horse")
    horses = wait_until(worker.horses, what="the work horse")
    workers.orphans.extend(horses)

    # SIGKILL the worker's process group and the horse's (it leads its own): no shutdown
    # code runs, as when the host dies.
    kill_hard(worker.pid)
    for horse in horses:
        kill_hard(horse)
    assert worker.wait(timeout=10) == -signal.SIGKILL
    wait_until(lambda: not any(pid_alive(pid) for pid in horses), what="the horse to die")

    # (a) pqinfo: the job is started, its worker still listed, its heartbeat age growing.
    first = pqinfo()
    dead = info_worker(first, WORKER)
    assert dead is not None, first["workers"]
    assert [j["id"] for j in dead["jobs"]] == [job.pk]
    assert dead["expired"] is False
    assert info_queue(first, "default")["started"] == 1
    assert Job.fetch(job.pk).status == JobStatus.STARTED
    # Before the deadline the worker may be alive: nothing rescues the job yet (one
    # statement, one now(): the reap sees the worker unexpired, as the first column does).
    with raw_conn.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT expires_at > now() FROM pq_worker WHERE name = %s), pq_reap_workers()",
            [WORKER],
        )
        assert cursor.fetchone() == (True, 0)
    assert Job.fetch(job.pk).status == JobStatus.STARTED
    time.sleep(0.4)
    second = info_worker(pqinfo(), WORKER)
    assert second is not None
    assert second["heartbeat_age"] >= dead["heartbeat_age"] + 0.3, (dead, second)

    # (b) the admin: the started list shows the job, the workers list the worker and its job.
    started = client.get(reverse("admin:pq_startedjob_changelist"))
    assert listed(started.content, "startedjob") == [str(job.pk)]
    workers_page = client.get(reverse("admin:pq_workerstore_changelist"))
    assert listed(workers_page.content, "workerstore") == [WORKER]
    assert f"{job.pk} tests.jobs.sleep_then_mark" in workers_page.content.decode()

    # (c) past the deadline, pqinfo calls the worker expired; the next worker to start
    # (it reaps as it registers) fails the job as AbandonedJob into 'failed'.
    expires = scalar(raw_conn, f"SELECT expires_at - now() FROM pq_worker WHERE name = '{WORKER}'")
    time.sleep(max(expires.total_seconds(), 0) + 0.2)
    expired = info_worker(pqinfo(), WORKER)
    assert expired is not None and expired["expired"] is True
    assert Job.fetch(job.pk).status == JobStatus.STARTED  # reported, not rescued, by pqinfo

    heir = workers.python_worker(["default"], "heir", HEARTBEAT)
    heir.wait_for_log("*** Listening for work on default")
    wait_until(
        lambda: Job.fetch(job.pk).status == JobStatus.FAILED,
        timeout=5,
        what="the new worker to fail the abandoned job",
    )
    rescued = Job.fetch(job.pk)
    assert rescued.queue == "failed" and rescued.origin == "default"
    assert rescued.exc_info.startswith("AbandonedJob"), rescued.exc_info
    assert WORKER in rescued.exc_info
    assert marks(marker) == ["started"], "the abandoned job ran again"

    after = pqinfo()
    assert info_worker(after, WORKER) is None
    assert info_worker(after, "heir") is not None
    assert info_queue(after, "default")["started"] == 0
    assert info_queue(after, "default")["failed"] == 1  # failed jobs count by origin
    assert listed(client.get(reverse("admin:pq_startedjob_changelist")).content, "startedjob") == []
    failed = client.get(reverse("admin:pq_failedjob_changelist"))
    assert listed(failed.content, "failedjob") == [str(job.pk)]
    workers_page = client.get(reverse("admin:pq_workerstore_changelist"))
    assert listed(workers_page.content, "workerstore") == ["heir"]
