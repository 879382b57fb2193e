"""Batch SQL: pq_enqueue_many, pq_dequeue_many, pq_finish_many, pq_finish_dequeue, pq_release."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg2
import psycopg2.extras
from psycopg2.extensions import connection

from tests.sql.helpers import (
    enqueue,
    execute,
    fetch_all,
    fetch_value,
    get_job,
    listen,
    notifications,
    raises_pq,
)

# The names this module claims jobs with, registered before each test (conftest.py).
CLAIMING_WORKERS = (
    "w1",
    "w2",
    "worker-7",
    "holder",
    "other",
    *(f"w{i}" for i in range(8)),
)


def enqueue_many(
    conn: connection,
    queue: str,
    funcs: list[str],
    args: list[str | None] | None = None,
    kwargs: list[str | None] | None = None,
    timeout: int | None = None,
    result_ttl: int | None = None,
) -> list[int]:
    rows = fetch_all(
        conn,
        "SELECT * FROM pq_enqueue_many(%s, %s::text[], %s::jsonb[], %s::jsonb[], %s, %s)",
        (queue, funcs, args, kwargs, timeout, result_ttl),
    )
    return [job_id for (job_id,) in rows]


def claim(conn: connection, queues: list[str], worker: str, n: int) -> list[dict[str, Any]]:
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
        cursor.execute("SELECT * FROM pq_dequeue_many(%s, %s, %s)", (queues, worker, n))
        return [dict(row) for row in cursor.fetchall()]


def test_enqueue_many_returns_ids_in_order_with_arguments(raw_conn: connection) -> None:
    ids = enqueue_many(
        raw_conn,
        "bulk",
        ["tests.jobs.add", "tests.jobs.echo", "tests.jobs.say_hello"],
        ["[1, 2]", None, '["Bob"]'],
    )
    assert ids == sorted(ids) and len(ids) == 3
    rows = fetch_all(raw_conn, "SELECT func, args, kwargs, queue, status FROM pq_job ORDER BY id")
    assert rows == [
        ("tests.jobs.add", [1, 2], {}, "bulk", "queued"),
        ("tests.jobs.echo", [], {}, "bulk", "queued"),
        ("tests.jobs.say_hello", ["Bob"], {}, "bulk", "queued"),
    ]


def test_enqueue_many_applies_timeout_and_result_ttl(raw_conn: connection) -> None:
    enqueue_many(raw_conn, "bulk", ["a.b", "c.d"], None, None, 30, 0)
    assert fetch_all(raw_conn, "SELECT timeout, result_ttl FROM pq_job") == [(30, 0), (30, 0)]


def test_enqueue_many_of_nothing_adds_nothing(raw_conn: connection) -> None:
    assert enqueue_many(raw_conn, "bulk", []) == []
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_job") == 0


def test_enqueue_many_names_the_bad_element(raw_conn: connection) -> None:
    with raises_pq("PQ001", r"pq_enqueue_many: job 2: func 'not a name' is not a dotted"):
        enqueue_many(raw_conn, "bulk", ["a.b", "not a name"])
    with raises_pq("PQ001", r"pq_enqueue_many: job 1: kwargs must be a JSON object, got array"):
        enqueue_many(raw_conn, "bulk", ["a.b"], None, ["[]"])
    with raises_pq("PQ001", r"pq_enqueue_many: 2 funcs but 1 args"):
        enqueue_many(raw_conn, "bulk", ["a.b", "c.d"], ["[]"])
    with raises_pq("PQ001", r"pq_enqueue_many: cannot enqueue on the failed queue"):
        enqueue_many(raw_conn, "failed", ["a.b"])
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_job") == 0


def test_enqueue_many_notifies_once_per_batch(
    raw_conn: connection, connect: Callable[..., connection]
) -> None:
    listener = connect()
    listen(listener)
    enqueue_many(raw_conn, "bulk", ["a.b"] * 200)
    assert notifications(listener, timeout=0.5) == [("pq_jobs", "bulk")]


def test_dequeue_many_claims_up_to_n_in_priority_then_fifo_order(raw_conn: connection) -> None:
    low = [enqueue(raw_conn, "low") for _ in range(3)]
    high = [enqueue(raw_conn, "high") for _ in range(2)]

    claimed = claim(raw_conn, ["high", "low"], "w1", 4)

    assert sorted(job["id"] for job in claimed) == sorted(high + low[:2])
    assert {job["status"] for job in claimed} == {"started"}
    assert {job["worker"] for job in claimed} == {"w1"}
    assert get_job(raw_conn, low[2])["status"] == "queued"


def test_dequeue_many_takes_one_job_from_a_serial_queue(raw_conn: connection) -> None:
    serial = [enqueue(raw_conn, "serial") for _ in range(3)]
    other = enqueue(raw_conn, "default")

    claimed = claim(raw_conn, ["serial", "default"], "w1", 10)

    assert sorted(job["id"] for job in claimed) == [serial[0], other]
    assert claim(raw_conn, ["serial"], "w2", 10) == []


def test_dequeue_many_refuses_a_batch_below_one(raw_conn: connection) -> None:
    with raises_pq("PQ001", r"max_jobs must be at least 1, got 0"):
        claim(raw_conn, ["default"], "w1", 0)


def test_finish_dequeue_stores_results_and_claims_in_one_call(raw_conn: connection) -> None:
    first, second, third = (enqueue(raw_conn, "default") for _ in range(3))
    claim(raw_conn, ["default"], "w1", 2)

    rows = fetch_all(
        raw_conn,
        "SELECT id FROM pq_finish_dequeue(%s::bigint[], %s::jsonb[], 'w1', 60, '{default}', 5)",
        ([first, second], ['"one"', None]),
    )

    assert rows == [(third,)]
    assert get_job(raw_conn, first)["result"] == "one"
    assert get_job(raw_conn, first)["status"] == "finished"
    assert get_job(raw_conn, second)["status"] == "finished"
    assert get_job(raw_conn, second)["result"] is None


def test_finish_many_counts_only_jobs_the_worker_has_started(raw_conn: connection) -> None:
    mine, theirs = enqueue(raw_conn, "default"), enqueue(raw_conn, "default")
    claim(raw_conn, ["default"], "w1", 1)
    claim(raw_conn, ["default"], "w2", 1)

    finished = fetch_value(
        raw_conn,
        "SELECT pq_finish_many(%s::bigint[], 'w1', %s::jsonb[], 0)",
        ([mine, theirs], ["1", "2"]),
    )

    assert finished == 1
    assert get_job(raw_conn, mine) is None  # result_ttl 0: deleted
    assert get_job(raw_conn, theirs)["status"] == "started"
    with raises_pq("PQ001", r"2 job ids but 1 results"):
        execute(raw_conn, "SELECT pq_finish_many('{1,2}', 'w1', ARRAY['1'::jsonb])")


def test_release_puts_claimed_jobs_back_and_wakes_workers(
    raw_conn: connection, connect: Callable[..., connection]
) -> None:
    ids = [enqueue(raw_conn, "default") for _ in range(3)]
    claim(raw_conn, ["default"], "w1", 3)
    listener = connect()
    listen(listener)

    released = fetch_value(raw_conn, "SELECT pq_release(%s::bigint[], 'w2')", (ids,))
    assert released == 0  # not w2's
    released = fetch_value(raw_conn, "SELECT pq_release(%s::bigint[], 'w1')", (ids,))

    assert released == 3
    assert {get_job(raw_conn, i)["status"] for i in ids} == {"queued"}
    assert {get_job(raw_conn, i)["worker"] for i in ids} == {None}
    assert notifications(listener, timeout=0.5) == [("pq_jobs", "default")]


def test_concurrent_batch_claims_take_each_job_once_and_never_more_than_asked(
    dsn: str, raw_conn: connection
) -> None:
    # Workers plan their claim once per session, usually while the queue is empty. A plan
    # made on an empty table must still claim at most max_jobs jobs per call once thousands
    # wait, and two workers must never get the same job.
    execute(raw_conn, "VACUUM ANALYZE pq_job")
    workers = {name: psycopg2.connect(dsn) for name in ("w1", "w2")}
    claimed: dict[str, list[int]] = {name: [] for name in workers}
    sizes: list[int] = []

    def work(name: str) -> None:
        while rows := claim(workers[name], ["bulk"], name, 50):
            sizes.append(len(rows))
            claimed[name].extend(row["id"] for row in rows)

    try:
        for name, conn in workers.items():
            conn.autocommit = True
            assert claim(conn, ["bulk"], name, 50) == []
        ids = enqueue_many(raw_conn, "bulk", ["tests.jobs.add"] * 3000)
        threads = [threading.Thread(target=work, args=(name,)) for name in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for conn in workers.values():
            conn.close()
    assert max(sizes) <= 50
    assert sorted(claimed["w1"] + claimed["w2"]) == ids
    for name, got in claimed.items():
        assert fetch_value(
            raw_conn,
            "SELECT count(*) FROM pq_job WHERE status = 'started' AND worker = %s",
            (name,),
        ) == len(got)
