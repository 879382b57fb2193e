"""Workers and enqueueing through a real PgBouncer in transaction mode (README: Behind PgBouncer).

Transaction pooling hands a client a server connection per transaction only, so the
``LISTEN pq_jobs`` of a worker connected through it is run on some server connection and then
forgotten: no notification reaches the worker. What still makes it run jobs is its poll,
every ``PQ_DEFAULT_WORKER_TTL`` seconds, and the due time of the next scheduled job, which it
reads before each wait. Each test starts PgBouncer on a free port in front of the test
database; worker subprocesses reach it through ``PQ_TEST_DATABASE_DSN`` and get a short poll
through ``PQ_TEST_WORKER_TTL`` (see tests/settings.py).
"""

from __future__ import annotations

import getpass
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from psycopg2.extensions import make_dsn, parse_dsn

from pq.models import Job, JobStatus
from pq.processes import set_parent_death_signal
from pq.queue import Queue
from pq.testing import run_as_account
from tests import jobs
from tests.workerprocs import ROOT, WorkerProcess, WorkerProcesses, wait_until, worker_env

INSTALL = "apt-get install -y --no-install-recommends pgbouncer"
TTL = 3  # the poll interval of the workers here, in seconds
LATE = 1.0  # seconds a run may start after it was due (wake-up, claim, fork)


@dataclass
class PgBouncer:
    """A running PgBouncer: the DSN of the test database through it, and its log."""

    dsn: str
    log_path: Path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pgbouncer_config(target: dict[str, str], port: int, directory: Path) -> str:
    """Return pgbouncer.ini serving ``target``'s database on 127.0.0.1:``port``."""
    server = {key: target[key] for key in ("host", "port", "user", "password") if key in target}
    server["dbname"] = target["dbname"]
    entry = " ".join(f"{key}={value}" for key, value in server.items())
    return "\n".join(
        [
            "[databases]",
            f"{target['dbname']} = {entry}",
            "",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {port}",
            "unix_socket_dir =",
            "pool_mode = transaction",
            "auth_type = trust",
            f"auth_file = {directory / 'userlist.txt'}",
            "max_client_conn = 20",
            "default_pool_size = 4",
            f"logfile = {directory / 'pgbouncer.log'}",
            f"pidfile = {directory / 'pgbouncer.pid'}",
            "",
        ]
    )


def connects(dsn: str) -> bool:
    try:
        psycopg2.connect(dsn, connect_timeout=2).close()
    except psycopg2.OperationalError:
        return False
    return True


@pytest.fixture
def pgbouncer(dsn: str) -> Iterator[PgBouncer]:
    """PgBouncer, transaction pooling, in front of the test database; killed at teardown."""
    binary = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/sbin")
    if binary is None:
        pytest.skip(f"pgbouncer is not installed ({INSTALL})")
    target = parse_dsn(dsn)
    target.setdefault("host", "127.0.0.1")
    target.setdefault("port", "5432")
    account = run_as_account() if os.geteuid() == 0 else None  # pgbouncer refuses root
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pq-pgbouncer-", dir="/tmp") as name:
        directory = Path(name)
        user = target.get("user") or getpass.getuser()  # libpq's default user
        password = target.get("password", "")
        (directory / "userlist.txt").write_text(f'"{user}" "{password}"\n')
        (directory / "pgbouncer.ini").write_text(pgbouncer_config(target, port, directory))
        kwargs: dict[str, Any] = {}
        if account is not None:
            for path in (directory, *directory.iterdir()):
                os.chown(path, account.pw_uid, account.pw_gid)
            kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        process = subprocess.Popen(
            [binary, str(directory / "pgbouncer.ini")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            cwd=directory,
            # PgBouncer shuts down at once on SIGTERM, also if this process dies first.
            preexec_fn=lambda: set_parent_death_signal(signal.SIGTERM),
            **kwargs,
        )
        bouncer = PgBouncer(
            dsn=make_dsn(
                host="127.0.0.1",
                port=port,
                **{key: target[key] for key in ("dbname", "user", "password") if key in target},
            ),
            log_path=directory / "pgbouncer.log",
        )
        try:
            deadline = time.monotonic() + 15
            while not connects(bouncer.dsn):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"pgbouncer did not start:\n{bouncer.log()}")
                time.sleep(0.05)
            yield bouncer
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[WorkerProcesses]:
    with WorkerProcesses(tmp_path) as started:
        yield started


def start_idle_worker(
    workers: WorkerProcesses, monkeypatch: pytest.MonkeyPatch, dsn: str, ttl: int
) -> tuple[WorkerProcess, float]:
    """Start a forking ``pqworker default`` on ``dsn`` polling every ``ttl`` seconds; return it
    and the time.time() by which it was waiting (it waits right after logging that it listens).
    """
    with monkeypatch.context() as patched:  # worker_env() copies os.environ: only this worker
        patched.setenv("PQ_TEST_DATABASE_DSN", dsn)
        patched.setenv("PQ_TEST_WORKER_TTL", str(ttl))
        worker = workers.pqworker("default", "--name=bounced")
    worker.wait_for_log("*** Listening for work on default")
    return worker, time.time()


def starts(path: Path) -> list[float]:
    """The start times tests.jobs.record_span wrote to ``path``."""
    if not path.exists():
        return []
    return [float(line.split()[2]) for line in path.read_text().splitlines() if line[:5] == "start"]


# Enqueueing


def test_a_listen_through_pgbouncer_hears_no_notify(pgbouncer: PgBouncer, dsn: str) -> None:
    """Why workers behind it must poll: LISTEN is session state, which transaction pooling
    does not keep (the statement runs on some server connection, then the client has none)."""
    direct = psycopg2.connect(dsn)
    bounced = psycopg2.connect(pgbouncer.dsn)
    try:
        for conn in (direct, bounced):
            conn.autocommit = True
            conn.cursor().execute("LISTEN pq_jobs")
        Queue().enqueue(jobs.say_hello)  # NOTIFY pq_jobs 'default' at commit

        def heard(conn: Any) -> list[str]:
            conn.poll()
            return [notify.payload for notify in conn.notifies]

        assert wait_until(lambda: heard(direct), timeout=5) == ["default"]
        select.select([bounced], [], [], 1.0)
        assert heard(bounced) == []
        bounced.cursor().execute("SELECT 1")  # nor does its next statement bring it
        assert heard(bounced) == []
    finally:
        direct.close()
        bounced.close()


def enqueue_by_sql(dsn: str, func: str, args: str) -> int:
    """``SELECT pq_enqueue(...)`` on a new autocommit connection to ``dsn``; return the job id."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT pq_enqueue('default', %s, %s)", [func, args])
            return int(cursor.fetchone()[0])
    finally:
        conn.close()


def test_enqueueing_by_sql_through_pgbouncer_works(pgbouncer: PgBouncer) -> None:
    job = Job.fetch(enqueue_by_sql(pgbouncer.dsn, "tests.jobs.say_hello", '["SQL"]'))
    assert (job.status, job.func_name, job.args) == (
        JobStatus.QUEUED,
        "tests.jobs.say_hello",
        ["SQL"],
    )


def test_enqueueing_with_django_through_pgbouncer_works(pgbouncer: PgBouncer) -> None:
    """``Queue.enqueue_call`` on a Django connection through PgBouncer (``pqenqueue``)."""
    env = {**worker_env(), "PQ_TEST_DATABASE_DSN": pgbouncer.dsn}
    done = subprocess.run(
        [sys.executable, "-m", "django", "pqenqueue", "tests.jobs.say_hello", "Bouncer"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr + pgbouncer.log()
    job_id = int(done.stdout.split()[2])
    job = Job.fetch(job_id)
    assert (job.status, job.args) == (JobStatus.QUEUED, ["Bouncer"])


# Workers: no NOTIFY through transaction pooling, the poll and the due time instead


@pytest.mark.parametrize("through_pgbouncer", [False, True], ids=["direct", "pgbouncer"])
def test_a_job_enqueued_while_the_worker_waits_runs_at_once_direct_or_at_the_poll_through_pgbouncer(
    pgbouncer: PgBouncer,
    workers: WorkerProcesses,
    monkeypatch: pytest.MonkeyPatch,
    dsn: str,
    tmp_path: Path,
    through_pgbouncer: bool,
) -> None:
    log = tmp_path / "runs"
    worker_dsn = pgbouncer.dsn if through_pgbouncer else dsn
    worker, idle_since = start_idle_worker(workers, monkeypatch, worker_dsn, TTL)
    time.sleep(0.5)  # well into its first wait, which ends at the poll, ~TTL s after idle_since

    enqueued_at = time.time()
    # Enqueued through PgBouncer: its NOTIFY is sent from PostgreSQL at commit all the same.
    enqueue_by_sql(pgbouncer.dsn, "tests.jobs.record_span", json.dumps([str(log), 0, 0]))
    orm_job = Queue().enqueue(jobs.count_jobs)  # the horse's ORM goes where the worker does
    (start,) = wait_until(lambda: starts(log), timeout=TTL + 10, what="the job to run")
    took = start - enqueued_at

    if through_pgbouncer:
        # Not woken by the NOTIFY: run at the poll, TTL s after the worker began waiting.
        # PgBouncer logs the NOTIFY it dropped: "got packet 'A' from server when not linked".
        assert took > 1.0, f"ran {took:.2f} s after enqueueing: woken by a NOTIFY?"
        assert start <= idle_since + TTL + 2, f"ran {took:.2f} s after enqueueing\n{worker.log()}"
    else:
        assert took < 1.0, f"ran {took:.2f} s after enqueueing, not woken by the NOTIFY"
    wait_until(lambda: Job.fetch(orm_job.pk).status == JobStatus.FINISHED, timeout=10)
    assert Job.fetch(orm_job.pk).result == 2
    assert "Got record_span(" in worker.log()


def test_a_scheduled_job_runs_on_time_through_pgbouncer_without_a_notify(
    pgbouncer: PgBouncer, workers: WorkerProcesses, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The worker reads the next due time before it waits: no NOTIFY, no poll needed."""
    log = tmp_path / "runs"
    due = datetime.now(UTC) + timedelta(seconds=3)
    Queue().schedule(due, jobs.record_span, str(log), 0, 0)
    # A poll interval far longer than the test: only the due time it read can wake it.
    worker, idle_since = start_idle_worker(workers, monkeypatch, pgbouncer.dsn, 600)
    assert idle_since < due.timestamp(), "the worker started too late to wait for the job"

    (start,) = wait_until(lambda: starts(log), timeout=15, what="the scheduled run")
    assert due.timestamp() <= start <= due.timestamp() + LATE, worker.log()
