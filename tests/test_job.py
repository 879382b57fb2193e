"""Job: the handle enqueue returns, its status, and how its values are stored."""

from __future__ import annotations

import datetime
import decimal
import re

import pytest
from django.db import connections, models
from django.utils import timezone
from psycopg2.extensions import connection

from pq import sql
from pq.models import Job, JobStatus, QueueStore, ReadOnlyModelError
from pq.queue import Queue
from pq.serialization import PICKLE_TAG, to_json
from pq.worker import Worker
from tests import jobs
from tests.claims import claim

WORKER = "test-worker"

# Values JSON cannot hold, and what they read back as.
UNJSONABLE = {
    "datetime": datetime.datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=datetime.UTC),
    "naive datetime": datetime.datetime(2020, 1, 2, 3, 4, 5),
    "date": datetime.date(2021, 12, 31),
    "timedelta": datetime.timedelta(days=1, microseconds=5),
    "set": {1, 2, 3},
    "frozenset": frozenset({"a"}),
    "decimal": decimal.Decimal("3.14159265358979323846264338327950288"),
    "int keys": {1: "one", 2: "two"},
    "str with NUL": "a\x00b",
    "bytes": b"\x00\xff",
    "infinity": float("inf"),
    "dict with $pickle key": {PICKLE_TAG: "not base64!"},
    "calculator": jobs.Calculator(3),
}


def dequeue(queue: str = "default") -> dict:
    with connections["default"].cursor() as cursor:
        row = claim(cursor, [queue], WORKER)
    assert row is not None
    return row


def finish(job_id: int, result: object, ttl: int = 500) -> None:
    with connections["default"].cursor() as cursor:
        assert sql.finish(cursor, job_id, WORKER, to_json(result), ttl)


def select(raw_conn: connection, query: str, *params: object) -> list[tuple]:
    with raw_conn.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def same(value: object, expected: object) -> bool:
    """Equal, and of the same type (1 == 1.0 == True would hide a lossy round trip)."""
    if isinstance(expected, jobs.Calculator):
        return type(value) is jobs.Calculator and value.denominator == expected.denominator
    return type(value) is type(expected) and value == expected


# The returned Job


def test_enqueue_returns_a_saved_job_model_instance() -> None:
    before = timezone.now()
    job = Queue("greetings").enqueue(jobs.say_hello, "You")
    assert isinstance(job, Job)
    assert isinstance(job, models.Model)
    assert isinstance(job.id, int) and job.id > 0
    assert job.pk == job.id
    assert job.status == "queued"
    assert job.get_status(refresh=False) is JobStatus.QUEUED
    assert job.is_queued and not (job.is_started or job.is_finished or job.is_failed)
    assert job.queue == job.origin == "greetings"
    assert job.func_name == "tests.jobs.say_hello"
    assert job.args == ["You"]
    assert job.kwargs == {}
    assert job.result is None
    assert job.exc_info is None
    assert timezone.is_aware(job.enqueued_at)
    assert before - datetime.timedelta(seconds=5) <= job.enqueued_at <= timezone.now()
    assert job._state.adding is False
    assert job._state.db == "default"
    assert str(job) == f"job {job.pk} say_hello('You')"


def test_each_enqueue_gets_a_new_id() -> None:
    ids = [Queue().enqueue(jobs.say_hello).pk for _ in range(3)]
    assert len(set(ids)) == 3
    assert ids == sorted(ids)


def test_fetch_returns_the_stored_job() -> None:
    job = Queue().enqueue_call(jobs.echo, args=(1, "a"), kwargs={"k": [1]}, timeout=42)
    fetched = Job.fetch(job.pk)
    assert fetched == job  # model equality: same pk
    assert fetched is not job
    assert (fetched.func_name, fetched.args, fetched.kwargs, fetched.timeout) == (
        "tests.jobs.echo",
        [1, "a"],
        {"k": [1]},
        42,
    )
    assert fetched.origin == "default"
    assert fetched.status == JobStatus.QUEUED
    assert fetched.enqueued_at == job.enqueued_at


def test_fetch_on_another_connection() -> None:
    job = Queue().enqueue(jobs.say_hello)
    fetched = Job.fetch(job.pk, connection="other")
    assert fetched.pk == job.pk
    assert fetched._state.db == "other"


def test_fetch_of_a_missing_job_raises_does_not_exist() -> None:
    with pytest.raises(Job.DoesNotExist):
        Job.fetch(987654)


def test_refresh_from_db_reads_what_sql_changed(raw_conn: connection) -> None:
    job = Queue().enqueue(jobs.say_hello)
    select(raw_conn, "SELECT pq_register_worker('raw-worker', NULL, 3600)")
    select(raw_conn, "SELECT id FROM pq_dequeue(ARRAY['default'], 'raw-worker')")
    assert job.status == JobStatus.QUEUED
    job.refresh_from_db()
    assert job.status == JobStatus.STARTED
    assert job.worker == "raw-worker"
    assert job.started_at is not None


def test_get_status_follows_the_job() -> None:
    job = Queue().enqueue(jobs.say_hello)
    assert job.get_status() is JobStatus.QUEUED
    dequeue()
    assert job.get_status(refresh=False) is JobStatus.QUEUED  # not re-read
    assert job.get_status() is JobStatus.STARTED
    assert job.is_started
    finish(job.pk, "done")
    assert job.get_status() is JobStatus.FINISHED
    assert job.is_finished
    assert job.result == "done"  # get_status refreshes the result too


def test_get_status_of_a_failed_job() -> None:
    job = Queue("origin").enqueue(jobs.div_by_zero)
    dequeue("origin")
    with connections["default"].cursor() as cursor:
        assert sql.fail(cursor, job.pk, WORKER, "ZeroDivisionError: division by zero")
    assert job.get_status() is JobStatus.FAILED
    assert job.is_failed
    assert job.queue == "failed"
    assert job.origin == "origin"
    assert "ZeroDivisionError" in job.exc_info


def test_job_status_values_are_the_stored_strings(raw_conn: connection) -> None:
    [(source,)] = select(raw_conn, "SELECT prosrc FROM pg_proc WHERE proname = '_pq_job_valid'")
    statuses = re.findall(r"status IN \(([^)]*)\)", source)
    assert len(set(statuses)) == 1, statuses  # the test and the error message name the same
    allowed = set(re.findall(r"'(\w+)'", statuses[0]))
    assert allowed == {status.value for status in JobStatus}
    assert JobStatus.QUEUED == "queued"
    assert str(JobStatus.FINISHED) == "finished"
    assert JobStatus("failed") is JobStatus.FAILED
    assert {value for value, _ in Job.STATUS_CHOICES} == allowed


def test_every_job_status_is_accepted_by_the_table(raw_conn: connection) -> None:
    job = Queue().enqueue(jobs.say_hello)
    for status in JobStatus:
        select(
            raw_conn,
            "UPDATE pq_job SET status = %s, scheduled_for = now() WHERE id = %s RETURNING id",
            status.value,
            job.pk,
        )
        assert job.get_status() is status


def test_job_perform_and_description() -> None:
    job = Queue().enqueue(jobs.say_hello, name="Bob")
    assert job.get_description() == "say_hello(name='Bob')"
    assert Job.fetch(job.pk).perform() == "Hi there, Bob!"
    assert Job.fetch(job.pk).get_callable() is jobs.say_hello


def test_long_descriptions_are_cut() -> None:
    job = Queue().enqueue(jobs.echo, "x" * 1000)
    description = job.get_description()
    assert len(description) == 500
    assert description.startswith("echo('xxx") and description.endswith("...")


# Storing values


def test_jsonable_args_are_stored_as_plain_json(raw_conn: connection) -> None:
    args = [1, "two", 3.5, None, True, [1, [2]], {"a": {"b": None}}, "ünï", ""]
    kwargs = {"name": "Bob", "n": -1, "nested": {"list": [1.25, False]}}
    job = Queue().enqueue_call(jobs.echo, args=args, kwargs=kwargs)
    assert select(raw_conn, "SELECT args, kwargs FROM pq_job") == [(args, kwargs)]
    assert select(
        raw_conn,
        "SELECT args ->> 1, kwargs ->> 'name', jsonb_typeof(args -> 2),"
        " kwargs #>> '{nested,list,0}' FROM pq_job",
    ) == [("two", "Bob", "number", "1.25")]
    assert Job.fetch(job.pk).args == args
    assert Job.fetch(job.pk).kwargs == kwargs


def test_a_tuple_is_stored_as_a_json_list(raw_conn: connection) -> None:
    job = Queue().enqueue(jobs.echo, (1, 2), point=("x", (3, 4)))
    assert select(raw_conn, "SELECT args, kwargs FROM pq_job") == [
        ([[1, 2]], {"point": ["x", [3, 4]]})
    ]
    assert Job.fetch(job.pk).args == [[1, 2]]
    assert Job.fetch(job.pk).kwargs == {"point": ["x", [3, 4]]}


@pytest.mark.parametrize("value", list(UNJSONABLE.values()), ids=list(UNJSONABLE))
def test_unjsonable_args_round_trip_as_python_values(raw_conn: connection, value: object) -> None:
    job = Queue().enqueue(jobs.echo, value, 1, key=value)
    assert same(job.args[0], value)
    assert same(job.kwargs["key"], value)
    fetched = Job.fetch(job.pk)
    assert same(fetched.args[0], value)
    assert fetched.args[1] == 1
    assert same(fetched.kwargs["key"], value)
    # In SQL the value is a tagged pickle; its neighbours stay plain JSON.
    [(arg0, arg1, key)] = select(
        raw_conn, "SELECT args -> 0, args -> 1, kwargs -> 'key' FROM pq_job"
    )
    assert list(arg0) == [PICKLE_TAG] and isinstance(arg0[PICKLE_TAG], str)
    assert arg1 == 1
    assert key == arg0


def test_unjsonable_values_inside_structures_are_pickled_alone(raw_conn: connection) -> None:
    when = datetime.datetime(2020, 5, 6, tzinfo=datetime.UTC)
    job = Queue().enqueue(jobs.echo, {"when": when, "n": 1}, [when, "plain"])
    assert Job.fetch(job.pk).args == [{"when": when, "n": 1}, [when, "plain"]]
    [(args,)] = select(raw_conn, "SELECT args FROM pq_job")
    assert args[0]["n"] == 1
    assert list(args[0]["when"]) == [PICKLE_TAG]
    assert args[1][1] == "plain"


def test_a_user_dict_with_the_pickle_key_is_not_misread(raw_conn: connection) -> None:
    value = {PICKLE_TAG: "gASVAwAAAAAAAABLAS4="}  # valid base64 of a pickle, but user data
    job = Queue().enqueue(jobs.echo, value, {PICKLE_TAG: 1, "other": 2})
    assert Job.fetch(job.pk).args == [value, {PICKLE_TAG: 1, "other": 2}]
    [(args,)] = select(raw_conn, "SELECT args FROM pq_job")
    assert args[0] != value  # stored wrapped, so it cannot be taken for a pickle


@pytest.mark.parametrize("value", list(UNJSONABLE.values()), ids=list(UNJSONABLE))
def test_unjsonable_results_round_trip_as_python_values(value: object) -> None:
    job = Queue().enqueue(jobs.return_none)
    dequeue()
    finish(job.pk, value)
    assert same(Job.fetch(job.pk).result, value)
    assert job.get_status() is JobStatus.FINISHED
    assert same(job.result, value)


def test_jsonable_results_are_stored_as_plain_json(raw_conn: connection) -> None:
    result = {"words": 818, "list": [1, "a", None], "ok": True}
    job = Queue().enqueue(jobs.return_none)
    dequeue()
    finish(job.pk, result)
    assert select(raw_conn, "SELECT result, result ->> 'words' FROM pq_job") == [(result, "818")]
    assert Job.fetch(job.pk).result == result


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        (jobs.return_datetime, datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)),
        (jobs.unjsonable_result, {1, 2, 3}),
        (jobs.say_hello, "Hi there, Stranger!"),
    ],
)
def test_results_from_a_worker_round_trip(func: object, expected: object) -> None:
    job = Queue("results").enqueue(func)
    assert Worker(["results"], name="result-worker").work(burst=True)
    assert job.get_status() is JobStatus.FINISHED
    assert same(job.result, expected)
    assert same(Job.fetch(job.pk).result, expected)


def test_the_result_field_stores_values_as_enqueued_values_are() -> None:
    stored = Job._meta.get_field("result").get_prep_value({"when": datetime.date(2020, 1, 1)})
    assert list(stored["when"]) == [PICKLE_TAG]


def test_the_orm_cannot_write_what_the_sql_owns(raw_conn: connection) -> None:
    job = Queue().enqueue(jobs.return_none)
    job.status = JobStatus.FINISHED
    message = r"^pq_job rows are written by django-pq's SQL functions, not the ORM: "
    with pytest.raises(ReadOnlyModelError, match=message):
        job.save()
    with pytest.raises(ReadOnlyModelError, match=message):
        Job.objects.filter(pk=job.pk).update(status=JobStatus.FINISHED)
    with pytest.raises(ReadOnlyModelError, match=message):
        Job.objects.create(queue="default", origin="default", func="tests.jobs.return_none")
    with pytest.raises(ReadOnlyModelError, match=r"^pq_queue rows are written"):
        QueueStore(name="sneaky").save()
    assert select(raw_conn, "SELECT status FROM pq_job") == [("queued",)]
    assert QueueStore.objects.filter(name="sneaky").count() == 0


def test_job_is_importable_where_users_look_for_it() -> None:
    import pq
    import pq.job
    from pq import Job as TopLevelJob
    from pq import JobStatus as TopLevelStatus

    assert TopLevelJob is Job and pq.job.Job is Job
    assert TopLevelStatus is JobStatus and pq.job.JobStatus is JobStatus
    assert {"Job", "JobStatus"} <= set(pq.__all__)
    job = TopLevelJob.fetch(pq.Queue().enqueue("pq.utils.test_job").pk)
    assert job.status == "queued"
