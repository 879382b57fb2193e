"""The worker runs jobs in forked work horses and stores their outcome (in-process, burst mode).

Each test runs ``Worker(...).work(burst=True)`` in the test process against the real test
database; jobs run in real forked horses. Subprocess workers are in test_worker_process.py
and test_worker_recovery.py.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pq import Queue, Worker, get_failed_queue
from pq.models import Job, JobStatus, WorkerStore
from tests import jobs
from tests.workerprocs import worker_env

ENQUEUE_BY_SQL = textwrap.dedent(
    """
    import os
    import sys

    import psycopg2

    conn = psycopg2.connect(os.environ["PQ_TEST_DATABASE_DSN"])
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(\"\"\"SELECT pq_enqueue('default', 'tests.jobs.say_hello', '["SQL"]')\"\"\")
        (job_id,) = cursor.fetchone()
    conn.close()
    assert not any(name.split(".")[0] in ("django", "pq") for name in sys.modules), "not SQL only"
    print(job_id)
    """
)


def burst(*queues: str | Queue, **options: object) -> Worker:
    """Run a burst worker on ``queues`` (all queues when none) in this process; return it."""
    worker = Worker(list(queues) or None, **options)  # type: ignore[arg-type]
    worker.work(burst=True)
    return worker


def marker_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def test_job_enqueued_by_sql_from_a_process_without_django_is_run(tmp_path: Path) -> None:
    env = worker_env()
    del env["DJANGO_SETTINGS_MODULE"]
    env.pop("PYTHONPATH")
    done = subprocess.run(
        [sys.executable, "-c", ENQUEUE_BY_SQL],
        cwd=tmp_path,  # not the project: nothing of django-pq on the path but the installed copy
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    job_id = int(done.stdout.strip())
    assert Job.fetch(job_id).status == JobStatus.QUEUED

    assert burst("default").jobs_done == 1

    job = Job.fetch(job_id)
    assert job.status == JobStatus.FINISHED
    assert job.result == "Hi there, SQL!"
    assert job.worker is not None and job.started_at is not None
    assert job.ended_at is not None and job.ended_at >= job.started_at


def test_readme_jobs_run_and_store_their_results() -> None:
    q = Queue()
    calc = jobs.Calculator(2)
    enqueued = {
        "enqueue": (q.enqueue(jobs.say_hello, "You"), "Hi there, You!"),
        "enqueue_call args": (q.enqueue_call(jobs.say_hello, args=("You",)), "Hi there, You!"),
        "enqueue_call kwargs": (
            q.enqueue_call(jobs.say_hello, kwargs={"name": "You"}),
            "Hi there, You!",
        ),
        "no argument": (q.enqueue(jobs.say_hello), "Hi there, Stranger!"),
        "timeout": (
            q.enqueue_call(jobs.say_hello, args=("again",), timeout=60),
            "Hi there, again!",
        ),
        "kwargs through enqueue": (q.enqueue(jobs.say_hello, name="kw"), "Hi there, kw!"),
        "instance method": (q.enqueue(calc.calculate, 4, 5), 10),
        "instance method call": (q.enqueue_call(calc.calculate, args=(4, 5)), 10),
        "decorator": (jobs.decorated_hello.delay("friend"), "Hi there, friend!"),
        "dotted path": (q.enqueue("tests.jobs.add", 2, 3), 5),
        "mixed": (
            q.enqueue(jobs.echo, 1, "two", three=[3], four={"x": None}),
            {"args": [1, "two"], "kwargs": {"three": [3], "four": {"x": None}}},
        ),
    }

    worker = Worker(q)  # as the README: a worker on one Queue object
    assert worker.work(burst=True) is True

    assert worker.jobs_done == len(enqueued)
    for label, (job, expected) in enqueued.items():
        job.refresh_from_db()
        assert job.status == JobStatus.FINISHED, (label, job.exc_info)
        assert job.result == expected, label
        assert Job.fetch(job.pk).result == expected, label
        assert job.queue == job.origin == "default"
        assert job.exc_info is None
    assert enqueued["timeout"][0].timeout == 60


def test_results_that_json_cannot_hold_come_back_as_python_values() -> None:
    q = Queue()
    none = q.enqueue(jobs.return_none)
    when = q.enqueue(jobs.return_datetime)
    aset = q.enqueue(jobs.unjsonable_result)

    burst("default")

    assert Job.fetch(none.pk).status == JobStatus.FINISHED
    assert Job.fetch(none.pk).result is None
    assert Job.fetch(when.pk).result == datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert Job.fetch(aset.pk).result == {1, 2, 3}


def test_work_returns_whether_it_did_anything_and_unregisters() -> None:
    worker = Worker(["default"])
    assert worker.work(burst=True) is False
    Queue().enqueue(jobs.add, 1, 1)
    assert worker.work(burst=True) is True
    assert not WorkerStore.objects.exists()


def test_failing_job_goes_to_failed_queue_and_runs_again_when_requeued(tmp_path: Path) -> None:
    flag = tmp_path / "failed-once"
    job = Queue("emails").enqueue(jobs.fail_once, str(flag))
    after = Queue("emails").enqueue(jobs.say_hello, "after")

    burst("emails")

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.queue == "failed"
    assert job.origin == "emails"
    assert job.exc_info.startswith("Traceback (most recent call last):")
    assert "RuntimeError: failing the first run on purpose" in job.exc_info
    assert "fail_once" in job.exc_info
    assert job.result is None
    failed = get_failed_queue()
    assert failed.count == 1
    assert failed.job_ids == [job.pk]
    # the worker went on with the next job
    assert Job.fetch(after.pk).result == "Hi there, after!"

    failed.requeue(job.pk)
    job.refresh_from_db()
    assert (job.status, job.queue, job.exc_info) == (JobStatus.QUEUED, "emails", None)
    assert failed.count == 0

    burst("emails")

    job.refresh_from_db()
    assert job.status == JobStatus.FINISHED
    assert job.result == "second run"
    assert job.queue == "emails"
    assert job.exc_info is None


def test_exception_traceback_names_the_exception() -> None:
    job = Queue().enqueue(jobs.div_by_zero, 5)
    burst()
    job.refresh_from_db()
    assert job.is_failed
    assert "ZeroDivisionError" in job.exc_info
    assert "return x / 0" in job.exc_info


def test_job_using_the_orm_in_the_horse_and_the_next_job_both_run() -> None:
    q = Queue()
    counting = q.enqueue(jobs.count_jobs)
    q.enqueue(jobs.say_hello, "filler")
    after = q.enqueue(jobs.say_hello, "next")

    worker = burst("default")

    counting.refresh_from_db()
    assert counting.status == JobStatus.FINISHED, counting.exc_info
    assert counting.result == 3  # the horse's own connection sees every job row
    assert Job.fetch(after.pk).result == "Hi there, next!"
    assert worker.jobs_done == 3
    # and this process's Django connection still works
    assert Job.objects.filter(status="finished").count() == 3


def test_orm_jobs_in_a_row_each_get_a_working_connection() -> None:
    q = Queue()
    counted = [q.enqueue(jobs.count_jobs) for _ in range(3)]
    burst("default")
    assert [Job.fetch(job.pk).result for job in counted] == [3, 3, 3]


def test_queues_are_served_in_priority_order(tmp_path: Path) -> None:
    marker = tmp_path / "order"
    low, high = Queue("low"), Queue("high")
    for n in (1, 2):
        low.enqueue(jobs.write_marker, str(marker), f"low{n}")
    for n in (1, 2, 3):
        high.enqueue(jobs.write_marker, str(marker), f"high{n}")

    burst("high", "low")

    assert marker_lines(marker) == ["high1", "high2", "high3", "low1", "low2"]


def test_worker_ignores_queues_it_was_not_given(tmp_path: Path) -> None:
    ours = Queue("ours").enqueue(jobs.add, 1, 2)
    theirs = Queue("theirs").enqueue(jobs.add, 3, 4)
    burst("ours")
    assert Job.fetch(ours.pk).status == JobStatus.FINISHED
    assert Job.fetch(theirs.pk).status == JobStatus.QUEUED


def test_worker_without_queues_serves_every_queue_but_failed() -> None:
    first = Queue("alpha").enqueue(jobs.add, 1, 2)
    second = Queue("beta").enqueue(jobs.add, 3, 4)
    broken = Queue().enqueue(jobs.div_by_zero)

    burst()

    assert Job.fetch(first.pk).result == 3
    assert Job.fetch(second.pk).result == 7
    broken.refresh_from_db()
    assert (broken.status, broken.queue) == (JobStatus.FAILED, "failed")


def test_worker_on_another_connection_runs_that_connections_jobs() -> None:
    q = Queue("elsewhere", connection="other")
    job = q.enqueue(jobs.say_hello, "other")
    worker = Worker([q])
    assert worker.connection == "other"
    worker.work(burst=True)
    assert Job.fetch(job.pk, connection="other").result == "Hi there, other!"


def test_a_worker_cannot_work_on_the_failed_queue() -> None:
    with pytest.raises(ValueError, match="failed"):
        Worker("failed")
    with pytest.raises(ValueError, match="failed"):
        Worker(["default", "failed"])
    with pytest.raises(ValueError, match="failed"):
        Worker([get_failed_queue()])


def test_a_worker_cannot_mix_queues_of_two_connections() -> None:
    with pytest.raises(ValueError, match="one connection"):
        Worker([Queue("a"), Queue("b", connection="other")])
    with pytest.raises(ValueError, match="one connection"):
        Worker([Queue("b", connection="other")], connection="default")


def test_job_started_by_the_worker_is_visible_as_started() -> None:
    """While a job runs, its row says started, by this worker (read from another connection)."""
    job = Queue().enqueue(jobs.count_started_jobs_elsewhere)
    worker = burst("default", name="visible-worker")
    job.refresh_from_db()
    assert job.status == JobStatus.FINISHED, job.exc_info
    assert job.result == [[job.pk, "visible-worker"]]
    assert job.worker == "visible-worker"
    assert worker.name == "visible-worker"


@pytest.mark.parametrize("name", ["say_hello", "tests.jobs.say_hello"])
def test_job_enqueued_by_name_or_function_logs_its_description(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    func = jobs.say_hello if name == "say_hello" else name
    Queue().enqueue(func, "You")
    with caplog.at_level("INFO", logger="pq"):
        burst("default")
    messages = [record.getMessage() for record in caplog.records]
    assert "*** Listening for work on default" in messages
    assert "Got say_hello('You') from default" in messages


def test_pid_of_horse_is_not_the_worker(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    job = Queue().enqueue(jobs.write_pid_then_sleep, str(pid_file), 0)
    burst("default")
    assert Job.fetch(job.pk).status == JobStatus.FINISHED
    assert int(pid_file.read_text()) != os.getpid()
