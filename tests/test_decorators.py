"""The @job decorator: ``f.delay(...)`` enqueues ``f(...)``; ``f(...)`` still just runs it."""

from __future__ import annotations

from types import FunctionType

import pytest
from django.db import transaction
from django.test import override_settings
from psycopg2.extensions import connection

from pq.decorators import job
from pq.models import Job, JobStatus
from pq.queue import Queue
from pq.worker import Worker
from tests import jobs


def select(raw_conn: connection, query: str) -> list[tuple]:
    with raw_conn.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchall()


def test_delay_enqueues_on_the_named_queue(raw_conn: connection) -> None:
    queued = jobs.decorated_hello.delay("friend")
    assert isinstance(queued, Job)
    assert queued.status == JobStatus.QUEUED
    assert queued.queue == "default"
    assert queued.func_name == "tests.jobs.decorated_hello"
    assert queued.args == ["friend"]
    assert queued.kwargs == {}
    assert select(
        raw_conn, "SELECT queue, func, args, kwargs, timeout, result_ttl FROM pq_job"
    ) == [("default", "tests.jobs.decorated_hello", ["friend"], {}, None, None)]


def test_delay_passes_keywords_to_the_task() -> None:
    queued = jobs.decorated_hello.delay(name="friend")
    assert queued.args == []
    assert queued.kwargs == {"name": "friend"}
    assert Job.fetch(queued.pk).perform() == "Hi there, friend!"


def test_delay_uses_the_decorators_timeout_and_result_ttl(raw_conn: connection) -> None:
    queued = jobs.decorated_add.delay(1, 2)
    assert (queued.queue, queued.timeout, queued.result_ttl) == ("high", 30, 100)
    assert select(raw_conn, "SELECT queue, timeout, result_ttl, args FROM pq_job") == [
        ("high", 30, 100, [1, 2])
    ]
    assert Queue("high").count == 1
    assert Queue("default").count == 0


def test_delay_on_a_queue_object_uses_its_timeout() -> None:
    queued = jobs.decorated_on_low.delay(7)
    assert (queued.queue, queued.timeout, queued.result_ttl) == ("low", 45, None)


def test_delay_on_another_connection_enqueues_through_it() -> None:
    with transaction.atomic(using="default"):
        queued = jobs.decorated_on_other.delay(1)
        transaction.set_rollback(True, using="default")
    assert queued._state.db == "other"
    assert Job.objects.filter(pk=queued.pk).exists()  # not rolled back with 'default'


def test_delay_on_a_synchronous_queue_runs_the_job() -> None:
    done = jobs.decorated_inline.delay(6, 7)
    assert done.status == JobStatus.FINISHED
    assert done.result == 42
    assert Job.objects.count() == 0


def test_decorated_functions_still_run_when_called(raw_conn: connection) -> None:
    assert jobs.decorated_hello("you") == "Hi there, you!"
    assert jobs.decorated_hello() == "Hi there, Stranger!"
    assert jobs.decorated_add(2, 3) == 5
    assert jobs.decorated_on_low(4) == 4
    assert jobs.decorated_inline(2, 3) == 6
    assert select(raw_conn, "SELECT count(*) FROM pq_job") == [(0,)]


def test_decorator_keeps_the_function() -> None:
    assert jobs.decorated_add.__name__ == "decorated_add"
    assert jobs.decorated_add.__module__ == "tests.jobs"
    assert jobs.decorated_hello.delay.__name__ == "decorated_hello"
    assert jobs.decorated_hello.delay is not jobs.decorated_add.delay


def test_delayed_job_runs_on_a_worker() -> None:
    queued = jobs.decorated_add.delay(20, 22)
    assert Worker(["high"], name="decorator-worker").work(burst=True)
    assert queued.get_status() is JobStatus.FINISHED
    assert queued.result == 42


def copy_of(func: FunctionType) -> FunctionType:
    """A new function object with ``func``'s code and import path (decorating it leaves
    ``func`` as it was)."""
    clone = FunctionType(func.__code__, func.__globals__, func.__name__, func.__defaults__)
    clone.__qualname__ = func.__qualname__
    clone.__module__ = func.__module__
    return clone


def test_decorator_defaults_to_the_default_queue() -> None:
    add = job()(copy_of(jobs.add))
    queued = add.delay(1, 2)
    assert (queued.queue, queued.func_name, queued.timeout) == ("default", "tests.jobs.add", None)
    assert queued._state.db == "default"
    assert add(1, 2) == 3


@pytest.mark.parametrize("cache", [True, False])
def test_delay_works_with_and_without_the_queue_cache(cache: bool) -> None:
    with override_settings(PQ_QUEUE_CACHE=cache):
        first = jobs.decorated_hello.delay("a")
        second = jobs.decorated_hello.delay("b")
    assert Queue("default").job_ids == [first.pk, second.pk]


def test_delay_of_a_nested_function_is_refused() -> None:
    @job("default")
    def nested(x: int) -> int:
        return x

    assert nested(1) == 1
    with pytest.raises(ValueError, match="inside a function"):
        nested.delay(1)
    assert Job.objects.count() == 0
