"""manage.py pqinfo: queue counts, workers and schedules, as tables or JSON, once or repeated."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from psycopg2 import sql as pgsql
from psycopg2.extensions import connection, make_dsn, parse_dsn

from pq import sql
from pq.queue import Queue
from tests.sql.helpers import dequeue, execute, fetch_value, register
from tests.workerprocs import ROOT, worker_env

FUNC = "tests.jobs.say_hello"


def pqinfo(*args: str) -> str:
    out = StringIO()
    call_command("pqinfo", *args, stdout=out)
    return out.getvalue()


def pqinfo_json(*args: str) -> dict[str, Any]:
    return json.loads(pqinfo("--json", *args))


def queue_line_text(out: str, name: str) -> str:
    """The line of ``out`` starting with the word ``name``: queue ``name``'s, or TOTAL."""
    [line] = [line for line in out.splitlines() if line.split()[:1] == [name]]
    return line


def queue_line(out: str, name: str) -> list[str]:
    """The cells of queue ``name``'s line in the table (QUEUE SERIAL QUEUED ... FAILED)."""
    return queue_line_text(out, name).split()


@pytest.fixture
def jobs(raw_conn: connection) -> dict[str, int]:
    """Jobs in every state: default has 3 queued, 2 scheduled (1 due); work has 1 queued,
    1 started by worker w1 and 1 failed (in queue failed, origin work). Their ids by role."""
    default, work = Queue("default"), Queue("work")
    for _ in range(3):
        default.enqueue(FUNC, "Ann")
    now = timezone.now()
    default.schedule_call(now + timedelta(hours=1), FUNC)
    default.schedule_call(now - timedelta(minutes=1), FUNC)
    ids = [work.enqueue(FUNC, name).pk for name in ("a", "b", "c")]
    register(raw_conn, "w1")
    started = dequeue(raw_conn, ["work"], "w1")
    failing = dequeue(raw_conn, ["work"], "w1")
    assert started is not None and failing is not None
    assert fetch_value(raw_conn, "SELECT pq_fail(%s, 'w1', 'boom')", (failing["id"],))
    return {"started": started["id"], "failed": failing["id"], "queued": ids[2]}


def test_counts_per_queue(jobs: dict[str, int]) -> None:
    out = pqinfo()
    assert out.splitlines()[2].split() == [
        "QUEUE", "SERIAL", "QUEUED", "SCHEDULED", "DUE", "STARTED", "FAILED"
    ]  # fmt: skip
    assert queue_line(out, "default") == ["default", "no", "3", "2", "1", "0", "0"]
    assert queue_line(out, "serial") == ["serial", "yes", "0", "0", "0", "0", "0"]
    assert queue_line(out, "work") == ["work", "no", "1", "0", "0", "1", "1"]
    assert queue_line(out, "TOTAL") == ["TOTAL", "4", "2", "1", "1", "1"]
    assert not any(line.startswith("failed ") for line in out.splitlines())
    assert "3 queue(s), 1 worker(s)" in out


def test_a_worker_shows_its_started_job_and_heartbeat_age(
    raw_conn: connection, jobs: dict[str, int]
) -> None:
    execute(raw_conn, "UPDATE pq_worker SET heartbeat_at = now() - interval '42 seconds'")
    out = pqinfo()
    [line] = [line for line in out.splitlines() if line.startswith("w1 ")]
    assert line.split() == ["w1", "-", "-", "(all)", "42", "s", "ago", "no", "no"] + [
        str(jobs["started"]),
        FUNC,
    ]
    [worker] = pqinfo_json()["workers"]
    assert worker["jobs"] == [{"id": jobs["started"], "func": FUNC}]
    assert 42 <= worker["heartbeat_age"] < 50
    assert (worker["expired"], worker["stop"], worker["queues"]) == (False, False, [])


def test_an_expired_worker_is_flagged(raw_conn: connection) -> None:
    register(raw_conn, "alive", "dead")
    execute(
        raw_conn,
        "SELECT pq_register_worker('picky', '{mail,sms}', 60, 'box', 1234);"
        "UPDATE pq_worker SET expires_at = now() - interval '1 second' WHERE name = 'dead';"
        "UPDATE pq_worker SET stop = true WHERE name = 'alive'",
    )
    out = pqinfo()
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert lines["dead"][-3:] == ["EXPIRED", "no", "-"]
    assert lines["alive"][-3:] == ["no", "yes", "-"]
    assert lines["picky"][:4] == ["picky", "box", "1234", "mail,sms"]
    assert "3 worker(s) (1 expired)" in out
    expired = {w["name"]: w["expired"] for w in pqinfo_json()["workers"]}
    assert expired == {"alive": False, "dead": True, "picky": False}


def test_json_has_the_same_numbers(jobs: dict[str, int]) -> None:
    report = pqinfo_json()
    assert set(report) == {"generated_at", "queues", "workers", "schedules"}
    by_name = {q["name"]: q for q in report["queues"]}
    assert list(by_name) == ["default", "serial", "work"]
    assert by_name["default"] == {
        "name": "default",
        "serial": False,
        "queued": 3,
        "scheduled": 2,
        "due": 1,
        "started": 0,
        "failed": 0,
    }
    assert by_name["work"] | {"name": "", "serial": None} == {
        "name": "",
        "serial": None,
        "queued": 1,
        "scheduled": 0,
        "due": 0,
        "started": 1,
        "failed": 1,
    }
    assert by_name["serial"]["serial"] is True
    assert timezone.datetime.fromisoformat(report["generated_at"]) <= timezone.now()


def test_queue_limits_queues_workers_and_schedules(
    raw_conn: connection, jobs: dict[str, int]
) -> None:
    Queue("work").cron("0 3 * * *", FUNC, name="nightly")
    Queue("default").cron("0 4 * * *", FUNC, name="early")
    execute(raw_conn, "SELECT pq_register_worker('mailer', '{mail}', 60)")
    report = pqinfo_json("--queue", "work", "-q", "nowhere")
    assert [(q["name"], q["queued"], q["started"], q["failed"]) for q in report["queues"]] == [
        ("nowhere", 0, 0, 0),
        ("work", 1, 1, 1),
    ]
    assert [w["name"] for w in report["workers"]] == ["w1"]  # serves every queue
    assert [s["name"] for s in report["schedules"]] == ["nightly"]
    out = pqinfo("--queue=default")
    assert queue_line(out, "default")[2:] == ["3", "3", "1", "0", "0"]  # + early's next tick
    assert out.splitlines()[3:6] == [
        queue_line_text(out, "default"),
        queue_line_text(out, "TOTAL"),
        "",
    ]
    assert "mailer" not in out
    assert "early" in out and "nightly" not in out


def test_schedules_are_listed(jobs: dict[str, int]) -> None:
    job = Queue("default").cron("0 3 * * *", FUNC, name="nightly")
    out = pqinfo()
    [line] = [line for line in out.splitlines() if line.startswith("nightly ")]
    assert line.split()[:5] == ["nightly", "0", "3", "*", "*"]
    assert f"(job {job.pk})" in line
    [schedule] = pqinfo_json()["schedules"]
    assert (schedule["name"], schedule["next_job_id"]) == ("nightly", job.pk)


def test_no_jobs_no_workers_no_schedules() -> None:
    out = pqinfo()
    assert "No named schedules" in out
    assert queue_line(out, "TOTAL") == ["TOTAL", "0", "0", "0", "0", "0"]
    assert "2 queue(s), 0 worker(s)" in out


def test_queue_counts_read_the_partial_indexes_not_finished_rows(raw_conn: connection) -> None:
    execute(
        raw_conn,
        "INSERT INTO pq_job (queue, origin, status, func)"
        " SELECT 'default', 'default', 'finished', 'f' FROM generate_series(1, 50000);"
        "INSERT INTO pq_job (queue, origin, status, func)"
        " VALUES ('default', 'default', 'queued', 'f');"
        "ANALYZE pq_job",
    )
    with raw_conn.cursor() as cursor:
        query = cursor.mogrify(sql._QUEUE_COUNTS, {"queues": None}).decode()
        cursor.execute("EXPLAIN " + query)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Seq Scan on pq_job" not in plan, plan
    assert queue_line(pqinfo(), "default")[2] == "1"


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("interval", ["0", "-1", "-0.5"])
def test_a_non_positive_interval_is_a_command_error(interval: str) -> None:
    with pytest.raises(CommandError, match="--interval must be a positive number of seconds"):
        pqinfo(f"--interval={interval}")


def test_a_non_numeric_interval_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="interval"):
        pqinfo("--interval=soon")


def test_an_unknown_connection_is_a_command_error() -> None:
    with pytest.raises(CommandError, match=r"'nope' is not in settings.DATABASES"):
        pqinfo("--connection=nope")


def test_other_connection() -> None:
    Queue("default").enqueue(FUNC)
    assert queue_line(pqinfo("--connection", "other"), "default")[2] == "1"


# -- from the command line -----------------------------------------------------------------------


@pytest.fixture
def empty_database(raw_conn: connection, dsn: str) -> Iterator[str]:
    """A new database without django-pq's tables on the test server; its DSN."""
    name = "pq_info_test"
    drop = pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name))
    execute(raw_conn, drop)
    execute(raw_conn, pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    try:
        yield make_dsn(**{**parse_dsn(dsn), "dbname": name})
    finally:
        execute(raw_conn, drop)


def test_a_database_without_the_tables_says_to_migrate(empty_database: str) -> None:
    env = {**worker_env(), "PQ_TEST_DATABASE_DSN": empty_database}
    done = subprocess.run(
        [sys.executable, "-m", "django", "pqinfo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "CommandError: database 'default' (pq_info_test) has no django-pq tables: "
        "run `python manage.py migrate pq` first"
    ], done.stderr


def test_interval_refreshes_until_ctrl_c(jobs: dict[str, int]) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "django", "pqinfo", "--interval", "1"],
        cwd=ROOT,
        env=worker_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2.5)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "\033[" not in stdout  # not a terminal: no screen clearing
    reports = stdout.count("pq info at ")
    assert reports >= 2, stdout
    assert stdout.count("\ndefault ") == reports


def test_json_interval_prints_one_object_per_line(jobs: dict[str, int]) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "django", "pqinfo", "--json", "-i", "0.3", "-q", "work"],
        cwd=ROOT,
        env=worker_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    reports = [json.loads(line) for line in stdout.splitlines()]
    assert len(reports) >= 2
    assert all([q["name"] for q in r["queues"]] == ["work"] for r in reports)
