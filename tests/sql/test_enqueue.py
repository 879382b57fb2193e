"""pq_enqueue and pq_create_queue: validation, queue creation, scheduling, NOTIFY."""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Callable

import pytest
from psycopg2.extensions import connection

from tests.sql.helpers import (
    CHANNEL,
    FUNC,
    enqueue,
    execute,
    fetch_all,
    fetch_value,
    get_job,
    listen,
    notifications,
    raises_pq,
)


def test_enqueue_returns_increasing_ids_and_stores_the_job(raw_conn: connection) -> None:
    first = enqueue(raw_conn, "default", FUNC, args=["Bob"], kwargs={"x": 1}, timeout=30)
    second = enqueue(raw_conn, "default", FUNC)
    assert isinstance(first, int)
    assert second > first
    job = get_job(raw_conn, first)
    assert job is not None
    assert job["queue"] == job["origin"] == "default"
    assert job["status"] == "queued"
    assert job["func"] == FUNC
    assert job["args"] == ["Bob"]
    assert job["kwargs"] == {"x": 1}
    assert job["timeout"] == 30
    assert job["result_ttl"] is None
    assert job["scheduled_for"] is None


def test_enqueue_creates_a_missing_queue(raw_conn: connection) -> None:
    assert fetch_all(raw_conn, "SELECT 1 FROM pq_queue WHERE name = 'emails'") == []
    job_id = enqueue(raw_conn, "emails")
    assert fetch_value(raw_conn, "SELECT serial FROM pq_queue WHERE name = 'emails'") is False
    assert get_job(raw_conn, job_id)["queue"] == "emails"
    # A second job on the now existing queue does not trip over the queue row.
    enqueue(raw_conn, "emails")
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_queue WHERE name = 'emails'") == 1


@pytest.mark.parametrize(
    "func",
    ["", "not a name", "1module.func", "tests.jobs.", "tests..jobs", "os.system('x')", "say_hello"],
)
def test_enqueue_rejects_a_func_that_is_not_a_dotted_name(raw_conn: connection, func: str) -> None:
    with raises_pq(
        "PQ001", r"^pq_enqueue: func '.*' is not a dotted path to a function \(module.function\)$"
    ):
        enqueue(raw_conn, "default", func)
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_job") == 0


def test_enqueue_many_applies_the_same_rule_to_each_func(raw_conn: connection) -> None:
    with raises_pq(
        "PQ001",
        r"^pq_enqueue_many: job 2: func 'say_hello' is not a dotted path to a function"
        r" \(module.function\)$",
    ):
        fetch_value(
            raw_conn,
            "SELECT count(*) FROM pq_enqueue_many('default', %s::text[])",
            ([FUNC, "say_hello"],),
        )
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_job") == 0


@pytest.mark.parametrize("func", ["calculate", "_private"])
def test_with_an_instance_func_is_a_method_name(raw_conn: connection, func: str) -> None:
    job_id = fetch_value(
        raw_conn, "SELECT pq_enqueue('default', %s, instance => '\\x80'::bytea)", (func,)
    )
    assert get_job(raw_conn, job_id)["func"] == func


@pytest.mark.parametrize("func", ["tests.jobs.Calculator.calculate", "", "not a name", None])
def test_with_an_instance_a_dotted_or_bad_func_is_refused(raw_conn: connection, func: str) -> None:
    with raises_pq(
        "PQ001",
        r"^pq_enqueue: func .* is not a method name; with an instance, func names the method"
        r" to call on it$",
    ):
        fetch_value(
            raw_conn, "SELECT pq_enqueue('default', %s, instance => '\\x80'::bytea)", (func,)
        )


def test_enqueue_rejects_a_null_func(raw_conn: connection) -> None:
    with raises_pq(
        "PQ001", r"^pq_enqueue: func NULL is not a dotted path to a function \(module.function\)$"
    ):
        fetch_value(raw_conn, "SELECT pq_enqueue('default', NULL)")


@pytest.mark.parametrize(
    ("value", "kind"), [('{"a": 1}', "object"), ("1", "number"), ('"x"', "string")]
)
def test_enqueue_rejects_args_that_are_not_an_array(
    raw_conn: connection, value: str, kind: str
) -> None:
    with raises_pq("PQ001", rf"^pq_enqueue: args must be a JSON array, got {kind}$"):
        fetch_value(raw_conn, "SELECT pq_enqueue('default', %s, %s::jsonb)", (FUNC, value))


@pytest.mark.parametrize(
    ("value", "kind"), [("[1]", "array"), ("null", "null"), ("true", "boolean")]
)
def test_enqueue_rejects_kwargs_that_are_not_an_object(
    raw_conn: connection, value: str, kind: str
) -> None:
    with raises_pq("PQ001", rf"^pq_enqueue: kwargs must be a JSON object, got {kind}$"):
        fetch_value(raw_conn, "SELECT pq_enqueue('default', %s, '[]', %s::jsonb)", (FUNC, value))


@pytest.mark.parametrize("timeout", [0, -5])
def test_enqueue_rejects_a_timeout_that_is_not_positive(raw_conn: connection, timeout: int) -> None:
    with raises_pq(
        "PQ001", rf"^pq_enqueue: timeout must be a positive number of seconds, got {timeout}$"
    ):
        enqueue(raw_conn, "default", timeout=timeout)


@pytest.mark.parametrize("result_ttl", [-2, -100])
def test_enqueue_rejects_a_result_ttl_below_minus_one(
    raw_conn: connection, result_ttl: int
) -> None:
    with raises_pq("PQ001", rf"^pq_enqueue: result_ttl must be -1 .*, got {result_ttl}$"):
        enqueue(raw_conn, "default", result_ttl=result_ttl)


@pytest.mark.parametrize("result_ttl", [-1, 0, 60])
def test_enqueue_accepts_result_ttl_minus_one_zero_and_seconds(
    raw_conn: connection, result_ttl: int
) -> None:
    job_id = enqueue(raw_conn, "default", result_ttl=result_ttl)
    assert get_job(raw_conn, job_id)["result_ttl"] == result_ttl


def test_enqueue_rejects_an_empty_queue_name(raw_conn: connection) -> None:
    with raises_pq("PQ001", r"^invalid queue name '': a queue name is 1 to 100 characters$"):
        enqueue(raw_conn, "")


def test_enqueue_rejects_a_queue_name_over_100_characters(raw_conn: connection) -> None:
    with raises_pq("PQ001", r"^invalid queue name 'x{101}': a queue name is 1 to 100 characters$"):
        enqueue(raw_conn, "x" * 101)


def test_enqueue_on_the_failed_queue_is_refused(raw_conn: connection) -> None:
    with raises_pq("PQ001", r"^pq_enqueue: cannot enqueue on the failed queue$"):
        enqueue(raw_conn, "failed")
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_job") == 0


def test_validation_errors_carry_a_hint(raw_conn: connection) -> None:
    with raises_pq("PQ001", "not a dotted path to a function") as info:
        enqueue(raw_conn, "default", "bad name")
    assert "myapp.tasks.send_mail" in info.value.diag.message_hint


def test_create_queue_with_an_unknown_option_names_it(raw_conn: connection) -> None:
    with raises_pq(
        "PQ002", r'^pq_create_queue: unknown queue option\(s\) priority for queue "reports"$'
    ) as info:
        execute(
            raw_conn, """SELECT pq_create_queue('reports', '{"priority": 1, "serial": true}')"""
        )
    assert "serial" in info.value.diag.message_hint
    assert fetch_all(raw_conn, "SELECT 1 FROM pq_queue WHERE name = 'reports'") == []


def test_create_queue_sets_and_changes_options(raw_conn: connection) -> None:
    execute(raw_conn, """SELECT pq_create_queue('reports', '{"serial": true, "timeout": 60}')""")
    row = fetch_all(raw_conn, "SELECT serial, default_timeout FROM pq_queue WHERE name = 'reports'")
    assert row == [(True, 60)]
    # Options left out keep their value.
    execute(raw_conn, """SELECT pq_create_queue('reports', '{"timeout": 5}')""")
    row = fetch_all(raw_conn, "SELECT serial, default_timeout FROM pq_queue WHERE name = 'reports'")
    assert row == [(True, 5)]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ('{"serial": "yes"}', r"^pq_create_queue: option serial must be true or false"),
        ('{"timeout": 0}', r"^pq_create_queue: option timeout must be a positive whole number"),
        ('{"timeout": 1.5}', r"^pq_create_queue: option timeout must be a positive whole number"),
        ("[]", r"^pq_create_queue: options must be a JSON object, got array$"),
    ],
)
def test_create_queue_rejects_bad_option_values(
    raw_conn: connection, options: str, match: str
) -> None:
    with raises_pq("PQ001", match):
        execute(raw_conn, "SELECT pq_create_queue('reports', %s::jsonb)", (options,))


def test_enqueue_in_the_future_is_scheduled(raw_conn: connection) -> None:
    when = fetch_value(raw_conn, "SELECT now() + interval '1 hour'")
    job_id = enqueue(raw_conn, "default", scheduled_for=when)
    job = get_job(raw_conn, job_id)
    assert job["status"] == "scheduled"
    assert job["scheduled_for"] == when


def test_enqueue_scheduled_in_the_past_is_queued(raw_conn: connection) -> None:
    when = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    job = get_job(raw_conn, enqueue(raw_conn, "default", scheduled_for=when))
    assert job["status"] == "queued"
    assert job["scheduled_for"] is None


def test_enqueue_notifies_the_queue_name_after_commit(
    raw_conn: connection, connect: Callable[..., connection]
) -> None:
    listener = connect()
    listen(listener)
    producer = connect(autocommit=False)
    enqueue(producer, "emails")
    # Not delivered while the enqueuing transaction is open.
    assert notifications(listener, timeout=0.2) == []
    producer.commit()
    assert notifications(listener, count=1) == [(CHANNEL, "emails")]


def test_rolled_back_enqueue_notifies_nothing_and_leaves_no_job(
    raw_conn: connection, connect: Callable[..., connection]
) -> None:
    listener = connect()
    listen(listener)
    producer = connect(autocommit=False)
    job_id = enqueue(producer, "emails")
    producer.rollback()
    assert notifications(listener, timeout=0.3) == []
    assert get_job(raw_conn, job_id) is None


def test_scheduled_enqueue_notifies_so_that_workers_plan_their_sleep_with_it(
    raw_conn: connection, connect: Callable[..., connection]
) -> None:
    # A worker sleeps until the next due job of its queues: one scheduled after it went to
    # sleep must wake it to plan again, or it would run late (at its next poll).
    listener = connect()
    listen(listener)
    when = fetch_value(raw_conn, "SELECT now() + interval '1 hour'")
    enqueue(raw_conn, "emails", scheduled_for=when)
    assert notifications(listener, timeout=0.3) == [("pq_jobs", "emails")]


def test_bulk_enqueue_in_one_transaction_notifies_once_per_queue(
    connect: Callable[..., connection],
) -> None:
    listener = connect()
    listen(listener)
    producer = connect(autocommit=False)
    for _ in range(50):
        enqueue(producer, "bulk")
    enqueue(producer, "other")
    producer.commit()
    received = notifications(listener, timeout=0.5)
    assert sorted(received) == [(CHANNEL, "bulk"), (CHANNEL, "other")]


def test_concurrent_enqueues_create_a_new_queue_once(
    raw_conn: connection, connect: Callable[..., connection]
) -> None:
    first = connect(autocommit=False)
    first_job = enqueue(first, "fresh")  # creates the queue row, not committed yet
    second = connect(options="-c statement_timeout=5000")
    result: list[int | BaseException] = []

    def enqueue_second() -> None:
        try:
            result.append(enqueue(second, "fresh"))
        except BaseException as exc:  # checked in the test's thread
            result.append(exc)

    thread = threading.Thread(target=enqueue_second)
    thread.start()
    thread.join(timeout=0.2)
    first.commit()
    thread.join(timeout=5)
    assert len(result) == 1 and isinstance(result[0], int), result
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_queue WHERE name = 'fresh'") == 1
    assert [get_job(raw_conn, job_id)["queue"] for job_id in (first_job, result[0])] == [
        "fresh",
        "fresh",
    ]


# Limits: what a worker could not hold or run is refused up front.

MIB = 1024 * 1024


@pytest.mark.parametrize("when", ["infinity", "10000-01-01 00:00+00", "9999-12-31 12:00+00"])
def test_enqueue_refuses_a_due_time_no_python_datetime_holds(
    raw_conn: connection, when: str
) -> None:
    with raises_pq("PQ001", r"^pq_enqueue: scheduled_for .* is too far in the future"):
        enqueue(raw_conn, "default", scheduled_for=when)
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_job") == 0


def test_enqueue_accepts_a_due_time_far_but_within_range(raw_conn: connection) -> None:
    job_id = enqueue(raw_conn, "default", scheduled_for="9999-12-30 00:00+00")
    assert get_job(raw_conn, job_id)["status"] == "scheduled"


@pytest.mark.parametrize("part", ["args", "kwargs"])
def test_enqueue_refuses_args_or_kwargs_over_one_mib(raw_conn: connection, part: str) -> None:
    big = "x" * (MIB + 10)
    options = {"args": [big]} if part == "args" else {"kwargs": {"data": big}}
    with raises_pq("PQ001", rf"^pq_enqueue: {part} take \d+ bytes, at most 1048576"):
        enqueue(raw_conn, "default", **options)
    enqueue(raw_conn, "default", args=["x" * (MIB - 100)])


def test_enqueue_refuses_a_description_over_1000_characters(raw_conn: connection) -> None:
    statement = "SELECT pq_enqueue('default', %s, description => %s)"
    with raises_pq("PQ001", r"^pq_enqueue: description is 1001 characters long, at most 1000"):
        fetch_value(raw_conn, statement, (FUNC, "é" * 1001))
    assert fetch_value(raw_conn, statement, (FUNC, "é" * 1000)) is not None


def test_enqueue_job_applies_the_same_limits(raw_conn: connection) -> None:
    with raises_pq("PQ001", r"^pq_enqueue: scheduled_for infinity is too far"):
        fetch_all(
            raw_conn,
            "SELECT id FROM _pq_enqueue_job('default', %s, scheduled_for => 'infinity')",
            (FUNC,),
        )


def test_enqueue_many_refuses_an_element_over_the_limit(raw_conn: connection) -> None:
    big = json.dumps(["x" * (MIB + 10)])
    with raises_pq("PQ001", r"^pq_enqueue_many: job 2: args take \d+ bytes, at most 1048576"):
        fetch_all(
            raw_conn,
            "SELECT pq_enqueue_many('default', ARRAY[%s, %s], ARRAY['[]', %s]::jsonb[],"
            " ARRAY['{}', '{}']::jsonb[])",
            (FUNC, FUNC, big),
        )
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_job") == 0
