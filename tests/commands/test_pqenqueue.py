"""manage.py pqenqueue: enqueue (or, with --sync, run) a function by its dotted path."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from psycopg2.extensions import connection

from pq.models import Job, JobStatus

ROOT = Path(__file__).resolve().parents[2]


def pqenqueue(*args: str) -> str:
    out = StringIO()
    call_command("pqenqueue", *args, stdout=out)
    return out.getvalue()


def select(raw_conn: connection, query: str) -> list[tuple]:
    with raw_conn.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchall()


def test_enqueue_the_test_job(raw_conn: connection) -> None:
    out = pqenqueue("pq.utils.test_job")
    [(job_id, queue, func, args, status)] = select(
        raw_conn, "SELECT id, queue, func, args, status FROM pq_job"
    )
    assert (queue, func, args, status) == ("default", "pq.utils.test_job", [], "queued")
    assert out.strip() == f"Enqueued job {job_id} test_job() on default"


def test_enqueue_with_args_timeout_and_queue(raw_conn: connection) -> None:
    out = pqenqueue("tests.jobs.say_hello", "Bob", "--timeout=10", "--queue=x")
    [(job_id, queue, args, timeout, result_ttl)] = select(
        raw_conn, "SELECT id, queue, args, timeout, result_ttl FROM pq_job"
    )
    assert (queue, args, timeout, result_ttl) == ("x", ["Bob"], 10, None)
    assert f"Enqueued job {job_id} " in out
    assert "say_hello('Bob')" in out
    assert out.rstrip().endswith("on x")
    assert Job.fetch(job_id).perform() == "Hi there, Bob!"


def test_short_options_and_result_ttl(raw_conn: connection) -> None:
    pqenqueue("tests.jobs.echo", "a", "b", "-q", "short", "-t", "5", "--result-ttl=-1")
    assert select(raw_conn, "SELECT queue, args, timeout, result_ttl FROM pq_job") == [
        ("short", ["a", "b"], 5, -1)
    ]


def test_enqueue_on_another_connection() -> None:
    out = pqenqueue("tests.jobs.say_hello", "--connection=other")
    job_id = int(re.search(r"Enqueued job (\d+)", out).group(1))
    assert Job.fetch(job_id).status == JobStatus.QUEUED


def test_sync_runs_the_job_and_prints_its_result() -> None:
    out = pqenqueue("tests.jobs.say_hello", "Bob", "--sync")
    assert out.strip() == "Job result = 'Hi there, Bob!'"
    assert Job.objects.count() == 0


def test_sync_passes_arguments_as_strings() -> None:
    assert pqenqueue("tests.jobs.add", "1", "2", "--sync").strip() == "Job result = '12'"


def test_sync_of_a_job_without_result() -> None:
    assert pqenqueue("tests.jobs.return_none", "--sync").strip() == "Job result = None"


@pytest.mark.parametrize("path", ["say_hello", "tests.jobs.", "tests..jobs.say_hello", "a b.c"])
def test_a_bad_dotted_path_is_a_command_error(path: str) -> None:
    with pytest.raises(CommandError, match="dotted path"):
        pqenqueue(path)
    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("tests.jobs.no_such_function", "no_such_function"),
        ("no_such_pq_module.func", "no_such_pq_module"),
    ],
)
def test_sync_of_a_function_that_cannot_be_imported_is_a_command_error(
    path: str, error: str
) -> None:
    with pytest.raises(CommandError, match=error):
        pqenqueue(path, "--sync")


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("tests.jobs.no_such_function", "has no attribute 'no_such_function'"),
        ("no_such_pq_module.func", "no module 'no_such_pq_module'"),
        ("tests.broken_import_job.run", "No module named 'no_such_dependency_of_pq_tests'"),
    ],
)
def test_a_function_that_cannot_be_imported_is_not_enqueued(path: str, error: str) -> None:
    expected = rf"^cannot enqueue {re.escape(path)} \(\w+Error: .*{error}.*\); a worker would fail"
    with pytest.raises(CommandError, match=expected):
        pqenqueue(path)
    assert Job.objects.count() == 0


def test_enqueue_on_the_failed_queue_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="failed queue"):
        pqenqueue("tests.jobs.say_hello", "--queue=failed")
    assert Job.objects.count() == 0


def test_a_bad_timeout_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="timeout"):
        pqenqueue("tests.jobs.say_hello", "--timeout=0")
    with pytest.raises(CommandError, match="timeout"):
        pqenqueue("tests.jobs.say_hello", "--timeout=soon")
    assert Job.objects.count() == 0


def test_an_unknown_connection_is_a_command_error() -> None:
    with pytest.raises(CommandError) as caught:
        pqenqueue("tests.jobs.say_hello", "--connection=nope")
    assert "'nope'" in str(caught.value)
    assert "default, other" in str(caught.value)


def test_a_missing_function_argument_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="func"):
        pqenqueue()


def test_from_the_command_line(raw_conn: connection) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "django", "pqenqueue", "tests.jobs.say_hello", "Bob"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    [(job_id,)] = select(raw_conn, "SELECT id FROM pq_job WHERE args = '[\"Bob\"]'")
    assert f"Enqueued job {job_id} say_hello('Bob') on default" in done.stdout

    failed = subprocess.run(
        [sys.executable, "-m", "django", "pqenqueue", "say_hello"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 1
    assert "CommandError" in failed.stderr and "dotted path" in failed.stderr


def test_serial_makes_the_queue_serial_before_enqueueing(raw_conn: connection) -> None:
    pqenqueue("tests.jobs.say_hello", "--queue=reports")
    assert select(raw_conn, "SELECT serial FROM pq_queue WHERE name = 'reports'") == [(False,)]
    out = pqenqueue("tests.jobs.say_hello", "--queue=reports", "--serial")
    assert out.rstrip().endswith("on reports")
    assert select(raw_conn, "SELECT serial FROM pq_queue WHERE name = 'reports'") == [(True,)]
    assert select(raw_conn, "SELECT count(*) FROM pq_job WHERE queue = 'reports'") == [(2,)]


def test_priority_and_retry(raw_conn: connection) -> None:
    pqenqueue("tests.jobs.echo", "--priority=10", "--retry=3", "--retry-interval", "10", "30")
    pqenqueue("tests.jobs.echo", "-p", "-5", "--retry=2")
    assert select(
        raw_conn, "SELECT priority, max_retries, retry_intervals FROM pq_job ORDER BY id"
    ) == [(10, 3, [10, 30]), (-5, 2, [0])]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--priority=101"], "priority must be a whole number from -100 to 100"),
        (["--retry=-1"], "Retry(max=...) must be a whole number, 0 or more, got -1"),
        (["--retry=1", "--retry-interval", "-10"], "Retry(interval=...) must be seconds"),
        (["--retry-interval", "10"], "--retry-interval needs --retry MAX"),
    ],
)
def test_bad_priority_or_retry_is_refused(raw_conn: connection, args: list, message: str) -> None:
    with pytest.raises(CommandError) as info:
        pqenqueue("tests.jobs.echo", *args)
    assert message in str(info.value)
    assert select(raw_conn, "SELECT count(*) FROM pq_job") == [(0,)]
