"""Queue: creating queues and enqueueing jobs (RQ's API), on real PostgreSQL."""

from __future__ import annotations

import datetime
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from django.db import connections, transaction
from django.test import override_settings
from psycopg2.extensions import connection

import pq
from pq import sql
from pq.benchmark import count_unfinished
from pq.exceptions import InvalidArgument, InvalidJobState, NoSuchJob
from pq.models import Job, JobStatus
from pq.queue import FailedQueue, Queue, SerialQueue, get_failed_queue
from tests import jobs
from tests.claims import claim

ROOT = Path(__file__).resolve().parent.parent


def fail_job(job: Job, worker: str = "test-worker") -> None:
    """Fail ``job`` as a worker would: claim it with pq_dequeue, then pq_fail it."""
    with connections["default"].cursor() as cursor:
        row = claim(cursor, [job.queue], worker)
        assert row is not None and row["id"] == job.pk
        assert sql.fail(cursor, job.pk, worker, "Traceback...\nZeroDivisionError: boom")


def start_job(queue: str, worker: str = "test-worker") -> int:
    """Claim the next job of ``queue`` with pq_dequeue; return its id."""
    with connections["default"].cursor() as cursor:
        row = claim(cursor, [queue], worker)
    assert row is not None
    return row["id"]


def stored(raw_conn: connection, query: str, *params: object) -> list[tuple]:
    with raw_conn.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


# Creating queues


def test_queue_without_name_is_default(raw_conn: connection) -> None:
    q = Queue()
    assert q.name == "default"
    assert q.connection == "default"
    job = q.enqueue(jobs.say_hello)
    assert stored(raw_conn, "SELECT queue, origin FROM pq_job WHERE id = %s", job.pk) == [
        ("default", "default")
    ]


def test_pq_package_exports_queue() -> None:
    assert pq.Queue is Queue
    assert pq.get_failed_queue is get_failed_queue
    with pytest.raises(AttributeError, match="Nope"):
        pq.Nope  # noqa: B018


def test_named_queue_is_created_by_first_enqueue(raw_conn: connection) -> None:
    q = Queue("farqueue")
    assert q.name == "farqueue"
    assert stored(raw_conn, "SELECT name FROM pq_queue WHERE name = 'farqueue'") == []
    job = q.enqueue(jobs.say_hello, "You")
    assert job.queue == "farqueue"
    assert job.origin == "farqueue"
    assert stored(raw_conn, "SELECT name FROM pq_queue WHERE name = 'farqueue'") == [("farqueue",)]
    assert stored(raw_conn, "SELECT id, queue FROM pq_job") == [(job.pk, "farqueue")]


@override_settings(PQ_QUEUE_CACHE=True)
def test_create_caches_queues_when_queue_cache_is_on() -> None:
    q = Queue.create("cached")
    assert isinstance(q, Queue)
    assert q.name == "cached"
    assert Queue.create("cached") is q
    assert Queue.create("cached-other") is not q
    assert Queue.create("cached", timeout=60) is not q
    assert Queue.create("cached", connection="other") is not q


@override_settings(PQ_QUEUE_CACHE=False)
def test_create_makes_new_queues_when_queue_cache_is_off() -> None:
    first = Queue.create("uncached")
    second = Queue.create("uncached")
    assert first is not second
    assert first == second
    assert first.name == second.name == "uncached"


def test_create_default_is_the_default_queue() -> None:
    assert Queue.create().name == "default"
    assert Queue.create() == Queue()


def test_queues_are_equal_by_name_and_connection() -> None:
    assert Queue("a") == Queue("a", timeout=10)
    assert Queue("a") != Queue("b")
    assert Queue("a") != Queue("a", connection="other")
    assert len({Queue("a"), Queue("a"), Queue("b")}) == 2
    assert "'a'" in repr(Queue("a")) and "'default'" in repr(Queue("a"))


def test_queue_timeout_is_the_jobs_timeout(raw_conn: connection) -> None:
    job = Queue(timeout=600).enqueue(jobs.say_hello)
    assert job.timeout == 600
    assert stored(raw_conn, "SELECT timeout FROM pq_job WHERE id = %s", job.pk) == [(600,)]


def test_enqueue_call_timeout_beats_the_queue_timeout() -> None:
    job = Queue(timeout=600).enqueue_call(jobs.say_hello, timeout=60)
    assert Job.fetch(job.pk).timeout == 60


def test_queue_without_timeout_leaves_it_to_the_worker(raw_conn: connection) -> None:
    job = Queue().enqueue(jobs.say_hello)
    assert job.timeout is None
    assert stored(raw_conn, "SELECT timeout, result_ttl FROM pq_job") == [(None, None)]


@pytest.mark.parametrize("timeout", [0, -5, 1.5, "60", True])
def test_queue_refuses_a_bad_timeout(timeout: object) -> None:
    with pytest.raises(ValueError, match="timeout"):
        Queue(timeout=timeout)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", None, 42])
def test_queue_refuses_a_bad_name(name: object) -> None:
    with pytest.raises(ValueError, match="queue name"):
        Queue(name)  # type: ignore[arg-type]


def test_queue_on_other_connection_enqueues_through_that_alias() -> None:
    q = Queue(connection="other")
    with transaction.atomic(using="other"):
        job = q.enqueue(jobs.say_hello, "other")
        assert job._state.db == "other"
        # Not committed yet: the 'default' connection cannot see it, 'other' can.
        assert not Job.objects.using("default").filter(pk=job.pk).exists()
        assert Job.objects.using("other").filter(pk=job.pk).exists()
        assert q.count == 1
        assert Queue().count == 0
    assert Job.fetch(job.pk).args == ["other"]


def test_queue_on_other_connection_ignores_a_rollback_on_default() -> None:
    with transaction.atomic(using="default"):
        job = Queue(connection="other").enqueue(jobs.say_hello)
        transaction.set_rollback(True, using="default")
    assert Job.objects.filter(pk=job.pk).exists()


def test_unknown_connection_alias_names_the_known_ones() -> None:
    with pytest.raises(ValueError) as caught:
        Queue(connection="nope")
    message = str(caught.value)
    assert "'nope'" in message
    assert "default" in message and "other" in message


def test_unknown_queue_options_are_a_type_error_naming_them() -> None:
    with pytest.raises(TypeError) as caught:
        Queue("x", colour="red", serial_number=3)
    message = str(caught.value)
    assert "colour" in message and "serial_number" in message


def test_create_refuses_unknown_options_too() -> None:
    with pytest.raises(TypeError, match="colour"):
        Queue.create("x", colour="red")


# Synchronous queues


@pytest.mark.parametrize(
    "options", [{"is_async": False}, {"async": False}], ids=["is_async", "async"]
)
def test_synchronous_queue_runs_the_job_inline(options: dict[str, bool]) -> None:
    q = Queue(**options)
    assert q.is_async is False
    job = q.enqueue(jobs.say_hello, "You")
    assert isinstance(job, Job)
    assert job.status == JobStatus.FINISHED
    assert job.is_finished
    assert job.result == "Hi there, You!"
    assert job.func_name == "tests.jobs.say_hello"
    assert job.origin == "default"


def test_async_true_keeps_the_queue_asynchronous() -> None:
    q = Queue(**{"async": True})
    assert q.is_async is True
    assert q.enqueue(jobs.say_hello).status == JobStatus.QUEUED


def test_synchronous_queue_runs_enqueue_call_and_instance_methods() -> None:
    q = Queue(is_async=False)
    assert q.enqueue_call(jobs.add, args=(2,), kwargs={"y": 3}).result == 5
    assert q.enqueue(jobs.Calculator(2).calculate, 4, 5).result == 10
    assert q.enqueue("tests.jobs.add", 1, 2).result == 3


@pytest.mark.parametrize(
    "options", [{"is_async": False}, {"async": False}], ids=["is_async", "async"]
)
def test_synchronous_queue_raises_the_jobs_exception(options: dict[str, bool]) -> None:
    with pytest.raises(ZeroDivisionError):
        Queue(**options).enqueue(jobs.div_by_zero, 3)
    assert Job.objects.count() == 0


def test_synchronous_queue_checks_the_function_like_enqueue() -> None:
    with pytest.raises(ValueError, match="lambda"):
        Queue(is_async=False).enqueue(lambda: 1)


# enqueue and enqueue_call


def test_enqueue_passes_every_keyword_to_the_task() -> None:
    job = Queue().enqueue(
        jobs.echo, 1, timeout=5, result_ttl=7, description="d", args=(9,), kwargs={"k": 1}
    )
    assert job.args == [1]
    assert job.kwargs == {
        "timeout": 5,
        "result_ttl": 7,
        "description": "d",
        "args": [9],
        "kwargs": {"k": 1},
    }
    assert job.timeout is None
    assert job.result_ttl is None
    fetched = Job.fetch(job.pk)
    assert fetched.kwargs == job.kwargs
    assert fetched.perform() == {"args": [1], "kwargs": job.kwargs}


def test_enqueue_with_func_keyword_is_enqueue_call(raw_conn: connection) -> None:
    job = Queue().enqueue(
        func=jobs.echo, args=("a",), kwargs={"b": 2}, timeout=600, result_ttl=86400
    )
    assert job.func_name == "tests.jobs.echo"
    assert job.args == ["a"]
    assert job.kwargs == {"b": 2}
    assert stored(raw_conn, "SELECT args, kwargs, timeout, result_ttl FROM pq_job") == [
        (["a"], {"b": 2}, 600, 86400)
    ]


def test_enqueue_without_a_function_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="function"):
        Queue().enqueue()
    with pytest.raises(TypeError):
        Queue().enqueue(name="x")


def test_enqueue_call_stores_args_kwargs_timeout_and_result_ttl(raw_conn: connection) -> None:
    job = Queue().enqueue_call(
        jobs.say_hello, args=("again",), kwargs={}, timeout=60, result_ttl=-1
    )
    assert (job.args, job.kwargs, job.timeout, job.result_ttl) == (["again"], {}, 60, -1)
    assert stored(raw_conn, "SELECT func, args, kwargs, timeout, result_ttl FROM pq_job") == [
        ("tests.jobs.say_hello", ["again"], {}, 60, -1)
    ]


@pytest.mark.parametrize(
    ("queue", "call"),
    [
        (Queue(), {"func": jobs.say_hello}),
        (
            Queue("timed", timeout=30),
            {
                "func": jobs.echo,
                "args": ("a", (1, 2), {"k": [None, 1.5, True]}, datetime.date(2020, 1, 2)),
                "kwargs": {"z": 1, "a": {"nested": "yes"}, "when": datetime.time(3, 4)},
                "result_ttl": -1,
                "description": "echo things",
            },
        ),
        (Queue(), {"func": jobs.Calculator(2).calculate, "args": (4, 5), "timeout": 9}),
        (Queue(), {"func": "tests.jobs.add", "args": [1, 2], "result_ttl": 0}),
    ],
)
def test_enqueue_returns_the_job_as_stored(queue: Queue, call: dict[str, Any]) -> None:
    """q.enqueue builds its Job from what it passed and what the database returned (not
    the whole row): every field must still be what reading the row back gives."""
    job = queue.enqueue_call(**call)
    fetched = Job.fetch(job.pk)
    for field in Job._meta.concrete_fields:
        name = field.attname
        built, read = getattr(job, name), getattr(fetched, name)
        if isinstance(read, memoryview):  # bytea comes back as a memoryview
            read = bytes(read)
        assert built == read, name
    assert job._state.adding is False
    assert job._state.db == "default"
    assert job.get_description() == fetched.get_description()


def test_enqueue_call_with_kwargs_only() -> None:
    job = Queue().enqueue_call(jobs.say_hello, kwargs={"name": "You"})
    assert job.args == []
    assert job.kwargs == {"name": "You"}
    assert Job.fetch(job.pk).perform() == "Hi there, You!"


def test_enqueue_call_result_ttl_zero_is_kept() -> None:
    job = Queue().enqueue_call(jobs.say_hello, result_ttl=0)
    assert Job.fetch(job.pk).result_ttl == 0


def test_enqueue_call_description() -> None:
    job = Queue().enqueue_call(jobs.say_hello, description="greet everybody")
    assert Job.fetch(job.pk).description == "greet everybody"
    assert Job.fetch(job.pk).get_description() == "greet everybody"


@pytest.mark.parametrize(
    ("options", "word"),
    [({"timeout": 0}, "timeout"), ({"result_ttl": -2}, "result_ttl")],
)
def test_enqueue_call_refuses_bad_options(options: dict[str, int], word: str) -> None:
    with pytest.raises(InvalidArgument, match=word):
        Queue().enqueue_call(jobs.say_hello, **options)
    assert Queue().count == 0


def test_enqueue_on_the_failed_queue_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="failed"):
        Queue("failed").enqueue(jobs.say_hello)
    with pytest.raises(ValueError, match="failed queue"):
        get_failed_queue().enqueue(jobs.say_hello)
    assert Job.objects.count() == 0


def test_enqueue_by_dotted_path(raw_conn: connection) -> None:
    job = Queue().enqueue("tests.jobs.say_hello", "Bob")
    assert job.func_name == "tests.jobs.say_hello"
    assert stored(raw_conn, "SELECT func, args FROM pq_job") == [("tests.jobs.say_hello", ["Bob"])]
    assert Job.fetch(job.pk).perform() == "Hi there, Bob!"


@pytest.mark.parametrize("path", ["say_hello", "tests.jobs.", "tests jobs.say_hello", "1x.y"])
def test_enqueue_refuses_a_string_that_is_not_a_dotted_path(path: str) -> None:
    with pytest.raises(ValueError, match="dotted path"):
        Queue().enqueue(path)
    assert Job.objects.count() == 0


def test_enqueue_instance_method_stores_the_pickled_instance(raw_conn: connection) -> None:
    calc = jobs.Calculator(2)
    job = Queue().enqueue(calc.calculate, 4, 5)
    assert job.func_name == "calculate"
    assert job.args == [4, 5]
    [(func, instance)] = stored(raw_conn, "SELECT func, instance FROM pq_job")
    assert func == "calculate"
    stored_calc = pickle.loads(bytes(instance))
    assert type(stored_calc) is jobs.Calculator
    assert stored_calc.denominator == 2
    fetched = Job.fetch(job.pk)
    assert fetched.get_instance().denominator == 2
    assert fetched.perform() == 10
    assert fetched.get_description() == "Calculator.calculate(4, 5)"


def test_enqueue_call_instance_method() -> None:
    job = Queue().enqueue_call(jobs.Calculator(4).calculate, args=(4, 5))
    assert Job.fetch(job.pk).perform() == 5


def test_enqueue_refuses_a_lambda() -> None:
    with pytest.raises(ValueError, match="lambda") as caught:
        Queue().enqueue(lambda x: x, 1)
    assert "module-level function" in str(caught.value)
    assert Job.objects.count() == 0


def test_enqueue_refuses_a_nested_function() -> None:
    def nested() -> None:
        pass

    with pytest.raises(ValueError, match="inside a function") as caught:
        Queue().enqueue(nested)
    assert "module level" in str(caught.value)
    assert Job.objects.count() == 0


def test_enqueue_refuses_a_method_of_a_local_class() -> None:
    class Local:
        def run(self) -> None:
            pass

    with pytest.raises(ValueError, match="inside a function"):
        Queue().enqueue(Local().run)


def test_enqueue_refuses_functions_and_methods_from_main(tmp_path: Path) -> None:
    script = tmp_path / "enqueue_from_main.py"
    script.write_text(
        textwrap.dedent(
            """
            import django

            django.setup()

            from pq.queue import Queue


            def task():
                return 1


            class Task:
                def run(self):
                    return 1


            for func in (task, Task().run):
                try:
                    Queue().enqueue(func)
                except ValueError as exc:
                    print("ValueError:", exc)
                else:
                    print("enqueued", func)
            """
        )
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout
    assert all(line.startswith("ValueError:") and "__main__" in line for line in lines), lines
    assert "task" in lines[0] and "move it into a module" in lines[0]
    assert "Task.run" in lines[1] and "move the class into a module" in lines[1]
    assert Job.objects.count() == 0


def test_a_function_piped_into_manage_py_shell_is_refused() -> None:
    # `manage.py shell < script` runs the script in the shell command's module namespace, so
    # its functions claim a module that does not hold them.
    script = textwrap.dedent(
        """
        from pq import Queue

        def piped():
            return 1

        try:
            Queue().enqueue(piped)
        except ValueError as exc:
            print("ValueError:", exc)
        """
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "django", "shell", "--no-imports"],
        input=script,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "ValueError: cannot enqueue piped: workers would import it as"
        " django.core.management.commands.shell.piped, which does not exist (was it defined in"
        " `manage.py shell`?); define it in a module of your project and import it from there"
    ), done.stdout
    assert Job.objects.count() == 0


def test_enqueue_refuses_an_unpicklable_argument() -> None:
    with pytest.raises(ValueError, match="neither as JSON nor with pickle"):
        Queue().enqueue(jobs.echo, lambda: 1)
    assert Job.objects.count() == 0


# Transactions


def test_enqueue_in_a_rolled_back_transaction_leaves_no_job() -> None:
    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        job = Queue().enqueue(jobs.say_hello)
        assert Job.objects.filter(pk=job.pk).exists()
        raise Rollback
    assert not Job.objects.filter(pk=job.pk).exists()
    assert Queue().count == 0


def test_enqueue_in_a_committed_transaction_is_seen_after_commit(raw_conn: connection) -> None:
    with transaction.atomic():
        job = Queue().enqueue(jobs.say_hello)
        assert stored(raw_conn, "SELECT id FROM pq_job") == []
    assert stored(raw_conn, "SELECT id FROM pq_job") == [(job.pk,)]


# Counting, emptying, listing


def test_count_and_is_empty() -> None:
    q = Queue("counted")
    assert q.count == 0
    assert q.is_empty()
    q.enqueue(jobs.say_hello)
    q.enqueue(jobs.say_hello)
    Queue("elsewhere").enqueue(jobs.say_hello)
    assert q.count == 2
    assert not q.is_empty()
    start_job("counted")
    assert q.count == 1  # a started job is not waiting any more


def test_count_unfinished_counts_waiting_and_started_jobs_of_the_queue() -> None:
    q = Queue("polled")
    fail_job(q.enqueue(jobs.say_hello))
    for _ in range(3):
        q.enqueue(jobs.say_hello)
    Queue("elsewhere").enqueue(jobs.say_hello)
    start_job("polled")
    with connections["default"].cursor() as cursor:
        assert count_unfinished(cursor, "polled") == 3  # 2 queued and 1 started
        sql.finish(cursor, start_job("polled"), "test-worker", None, 60)
        assert count_unfinished(cursor, "polled") == 2  # 1 queued and 1 started


def test_empty_deletes_the_waiting_jobs_and_returns_how_many(raw_conn: connection) -> None:
    q = Queue("emptied")
    started = q.enqueue(jobs.say_hello)
    waiting = [q.enqueue(jobs.say_hello, str(n)).pk for n in range(3)]
    other = Queue("kept").enqueue(jobs.say_hello)
    assert start_job("emptied") == started.pk
    assert q.empty() == 3
    assert q.count == 0
    assert q.is_empty()
    left = stored(raw_conn, "SELECT id, status FROM pq_job ORDER BY id")
    assert left == [(started.pk, "started"), (other.pk, "queued")]
    assert not set(waiting) & {job_id for job_id, _ in left}
    assert q.empty() == 0


def test_jobs_lists_the_queues_jobs_oldest_first() -> None:
    q = Queue("listed")
    ids = [q.enqueue(jobs.add, n, n).pk for n in range(3)]
    Queue("unlisted").enqueue(jobs.say_hello)
    assert [job.pk for job in q.jobs] == ids
    assert q.job_ids == ids
    assert all(isinstance(job, Job) for job in q.jobs)
    assert [job.args for job in q.jobs] == [[0, 0], [1, 1], [2, 2]]


def test_jobs_of_a_queue_on_another_connection_are_read_there() -> None:
    q = Queue("listed", connection="other")
    job = q.enqueue(jobs.say_hello)
    assert q.jobs.db == "other"
    assert q.job_ids == [job.pk]


# The failed queue


def test_get_failed_queue() -> None:
    failed = get_failed_queue()
    assert isinstance(failed, FailedQueue)
    assert failed.name == "failed"
    assert failed.connection == "default"
    assert get_failed_queue("other").connection == "other"


def test_requeue_puts_a_failed_job_back_on_its_origin_queue(raw_conn: connection) -> None:
    job = Queue("origin").enqueue(jobs.div_by_zero)
    fail_job(job)
    failed = get_failed_queue()
    assert failed.count == 1
    assert failed.job_ids == [job.pk]
    assert Job.fetch(job.pk).get_status() == JobStatus.FAILED

    failed.requeue(job.pk)

    assert failed.count == 0
    assert Queue("origin").count == 1
    requeued = Job.fetch(job.pk)
    assert requeued.status == JobStatus.QUEUED
    assert requeued.queue == requeued.origin == "origin"
    assert requeued.exc_info is None
    assert requeued.worker is None
    assert stored(raw_conn, "SELECT queue, status FROM pq_job") == [("origin", "queued")]


def test_requeue_accepts_a_job() -> None:
    job = Queue().enqueue(jobs.div_by_zero)
    fail_job(job)
    get_failed_queue().requeue(Job.fetch(job.pk))
    assert Job.fetch(job.pk).status == JobStatus.QUEUED


def test_requeue_of_a_missing_job_is_no_such_job() -> None:
    with pytest.raises(NoSuchJob, match="123456"):
        get_failed_queue().requeue(123456)


def test_requeue_of_a_queued_job_is_invalid_job_state() -> None:
    job = Queue().enqueue(jobs.say_hello)
    with pytest.raises(InvalidJobState, match="queued"):
        get_failed_queue().requeue(job.pk)
    assert Job.fetch(job.pk).status == JobStatus.QUEUED


def test_requeue_errors_leave_the_connection_usable() -> None:
    with pytest.raises(NoSuchJob):
        get_failed_queue().requeue(1)
    assert Queue().enqueue(jobs.say_hello).pk > 0


def test_requeue_all_requeues_every_failed_job() -> None:
    first = Queue("one").enqueue(jobs.div_by_zero)
    second = Queue("two").enqueue(jobs.div_by_zero)
    untouched = Queue("one").enqueue(jobs.say_hello)
    fail_job(first)
    fail_job(second)
    failed = get_failed_queue()
    assert failed.count == 2

    assert failed.requeue_all() == 2

    assert failed.count == 0
    assert Queue("one").job_ids == [first.pk, untouched.pk]
    assert Queue("two").job_ids == [second.pk]
    assert {Job.fetch(pk).status for pk in (first.pk, second.pk)} == {JobStatus.QUEUED}
    assert failed.requeue_all() == 0


def queue_row(raw_conn: connection, name: str) -> list[tuple]:
    return stored(raw_conn, "SELECT serial, default_timeout FROM pq_queue WHERE name = %s", name)


def test_serial_queue_is_the_queue_serial_and_exported() -> None:
    assert pq.SerialQueue is SerialQueue
    queue = SerialQueue()
    assert queue.name == "serial" and isinstance(queue, Queue)
    assert queue == Queue("serial")


def test_making_a_serial_queue_records_it_as_serial(raw_conn: connection) -> None:
    Queue("reports")
    assert queue_row(raw_conn, "reports") == []  # a plain Queue does not touch the database
    queue = SerialQueue("reports", timeout=30)
    assert (queue.name, queue.timeout) == ("reports", 30)
    assert queue_row(raw_conn, "reports") == [(True, None)]


def test_making_a_serial_queue_keeps_its_other_options(raw_conn: connection) -> None:
    with raw_conn.cursor() as cursor:
        cursor.execute("""SELECT pq_create_queue('reports', '{"timeout": 60}')""")
    SerialQueue("reports")
    assert queue_row(raw_conn, "reports") == [(True, 60)]


def test_a_serial_queue_made_in_a_rolled_back_transaction_is_not_serial(
    raw_conn: connection,
) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        SerialQueue("reports")
        raise RuntimeError("roll back")
    assert queue_row(raw_conn, "reports") == []


def test_serial_queue_create_is_cached_like_queue_create(raw_conn: connection) -> None:
    with override_settings(PQ_QUEUE_CACHE=True):
        queue = SerialQueue.create("cached-serial")
        assert isinstance(queue, SerialQueue)
        assert SerialQueue.create("cached-serial") is queue
        assert Queue.create("cached-serial") is not queue
    assert SerialQueue.create().name == "serial"
    assert queue_row(raw_conn, "cached-serial") == [(True, None)]


def test_jobs_of_a_plain_queue_on_a_serial_queue_are_claimed_one_at_a_time() -> None:
    SerialQueue("reports")
    first = Queue("reports").enqueue(jobs.say_hello, "1")
    Queue("reports").enqueue(jobs.say_hello, "2")
    assert start_job("reports", "w1") == first.pk
    with connections["default"].cursor() as cursor:
        assert claim(cursor, ["reports"], "w2") is None
