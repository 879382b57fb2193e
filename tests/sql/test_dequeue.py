"""pq_dequeue: order, scheduling, locking, serial queues, stopped workers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from psycopg2.extensions import connection

from tests.sql.helpers import (
    FUNC,
    dequeue,
    enqueue,
    execute,
    fetch_all,
    fetch_value,
    get_job,
    job_ids,
)

# Connection options making a statement fail instead of waiting on a lock.
NO_WAIT = "-c lock_timeout=500 -c statement_timeout=1000"


def _schedule_due(conn: connection, queue: str, seconds_ago: int) -> int:
    """Enqueue a job scheduled in the future, then move its due time into the past."""
    later = fetch_value(conn, "SELECT now() + interval '1 hour'")
    job_id = enqueue(conn, queue, scheduled_for=later)
    execute(
        conn,
        "UPDATE pq_job SET scheduled_for = now() - make_interval(secs => %s) WHERE id = %s",
        (seconds_ago, job_id),
    )
    return job_id


def test_dequeue_of_empty_or_unknown_queues_returns_nothing(raw_conn: connection) -> None:
    assert dequeue(raw_conn, ["default"]) is None
    assert dequeue(raw_conn, ["no-such-queue"]) is None
    assert dequeue(raw_conn, []) is None


def test_queues_are_tried_in_the_order_given(raw_conn: connection) -> None:
    low = enqueue(raw_conn, "low")
    high = enqueue(raw_conn, "high")
    assert dequeue(raw_conn, ["high", "low"])["id"] == high
    assert dequeue(raw_conn, ["high", "low"])["id"] == low

    low = enqueue(raw_conn, "low")
    high = enqueue(raw_conn, "high")
    assert dequeue(raw_conn, ["low", "high"])["id"] == low


def test_jobs_of_a_queue_come_out_in_fifo_order(raw_conn: connection) -> None:
    ids = [enqueue(raw_conn, "default") for _ in range(5)]
    enqueue(raw_conn, "other")
    got = [dequeue(raw_conn, ["default"])["id"] for _ in range(5)]
    assert got == ids
    assert dequeue(raw_conn, ["default"]) is None


def test_due_scheduled_jobs_come_before_queued_ones(raw_conn: connection) -> None:
    queued = enqueue(raw_conn, "default")
    due_recently = _schedule_due(raw_conn, "default", 10)
    due_long_ago = _schedule_due(raw_conn, "default", 60)
    assert dequeue(raw_conn, ["default"])["id"] == due_long_ago
    assert dequeue(raw_conn, ["default"])["id"] == due_recently
    assert dequeue(raw_conn, ["default"])["id"] == queued


def test_future_scheduled_jobs_are_not_handed_out(raw_conn: connection) -> None:
    later = fetch_value(raw_conn, "SELECT now() + interval '1 hour'")
    job_id = enqueue(raw_conn, "default", scheduled_for=later)
    assert dequeue(raw_conn, ["default"]) is None
    assert get_job(raw_conn, job_id)["status"] == "scheduled"
    assert fetch_value(raw_conn, "SELECT pq_next_due(ARRAY['default'])") == later


def test_dequeue_marks_the_job_started_by_the_worker(raw_conn: connection) -> None:
    job_id = enqueue(raw_conn, "default")
    before = fetch_value(raw_conn, "SELECT clock_timestamp()")
    job = dequeue(raw_conn, ["default"], "worker-7")
    after = fetch_value(raw_conn, "SELECT clock_timestamp()")
    assert job["id"] == job_id
    assert job["status"] == "started"
    assert job["worker"] == "worker-7"
    assert before <= job["started_at"] <= after
    # The returned row is the stored one.
    assert get_job(raw_conn, job_id) == job


def test_a_job_locked_by_another_transaction_is_skipped_without_waiting(
    raw_conn: connection, connect: Callable[..., connection]
) -> None:
    first = enqueue(raw_conn, "default")
    second = enqueue(raw_conn, "default")
    holder = connect(autocommit=False)
    assert dequeue(holder, ["default"], "holder")["id"] == first  # transaction left open

    other = connect(options=NO_WAIT)
    start = time.monotonic()
    assert dequeue(other, ["default"], "other")["id"] == second
    assert time.monotonic() - start < 0.5
    assert dequeue(other, ["default"], "other") is None

    # The holder's claim was never committed: rolling back puts the first job back.
    holder.rollback()
    assert get_job(raw_conn, first)["status"] == "queued"
    assert dequeue(other, ["default"], "other")["id"] == first


def test_concurrent_dequeuers_get_each_job_exactly_once(
    raw_conn: connection, connect: Callable[..., connection]
) -> None:
    expected = [enqueue(raw_conn, "default") for _ in range(300)]
    threads_count = 8
    conns = [connect() for _ in range(threads_count)]
    claimed: list[list[int]] = [[] for _ in range(threads_count)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_count)

    def work(index: int) -> None:
        try:
            barrier.wait()
            while (job := dequeue(conns[index], ["default"], f"w{index}")) is not None:
                claimed[index].append(job["id"])
        except BaseException as exc:  # reported below, with the thread's index
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    everything = [job_id for ids in claimed for job_id in ids]
    assert len(everything) == len(set(everything)), "a job was handed out twice"
    assert sorted(everything) == expected
    assert job_ids(raw_conn, "status <> 'started'") == []
    # Each job records the worker that got it.
    for index, ids in enumerate(claimed):
        if ids:
            assert job_ids(raw_conn, "worker = %s", (f"w{index}",)) == sorted(ids)


def test_serial_queue_hands_out_one_job_at_a_time(raw_conn: connection) -> None:
    first = enqueue(raw_conn, "serial")
    second = enqueue(raw_conn, "serial")
    other = enqueue(raw_conn, "default")
    assert dequeue(raw_conn, ["serial", "default"], "w1")["id"] == first
    # The serial queue is busy: another worker gets the next queue's job, then nothing.
    assert dequeue(raw_conn, ["serial", "default"], "w2")["id"] == other
    assert dequeue(raw_conn, ["serial"], "w2") is None
    assert fetch_value(raw_conn, "SELECT pq_finish(%s, 'w1', NULL, -1)", (first,)) is True
    assert dequeue(raw_conn, ["serial"], "w2")["id"] == second


def test_serial_queue_is_free_again_after_a_failure(raw_conn: connection) -> None:
    execute(raw_conn, """SELECT pq_create_queue('one-by-one', '{"serial": true}')""")
    first = enqueue(raw_conn, "one-by-one")
    second = enqueue(raw_conn, "one-by-one")
    assert dequeue(raw_conn, ["one-by-one"], "w1")["id"] == first
    assert dequeue(raw_conn, ["one-by-one"], "w2") is None
    assert fetch_value(raw_conn, "SELECT pq_fail(%s, 'w1', 'boom')", (first,)) is True
    assert dequeue(raw_conn, ["one-by-one"], "w2")["id"] == second


def test_serial_queue_being_claimed_is_skipped_without_waiting(
    raw_conn: connection, connect: Callable[..., connection]
) -> None:
    first = enqueue(raw_conn, "serial")
    enqueue(raw_conn, "serial")
    other = enqueue(raw_conn, "default")
    holder = connect(autocommit=False)
    assert dequeue(holder, ["serial"], "holder")["id"] == first  # transaction left open

    second_worker = connect(options=NO_WAIT)
    start = time.monotonic()
    assert dequeue(second_worker, ["serial", "default"], "w2")["id"] == other
    assert time.monotonic() - start < 0.5
    holder.commit()
    assert dequeue(second_worker, ["serial"], "w2") is None


def test_a_worker_asked_to_stop_gets_no_job(raw_conn: connection) -> None:
    job_id = enqueue(raw_conn, "default")
    execute(raw_conn, "SELECT pq_register_worker('w1', ARRAY['default'], 60)")
    execute(raw_conn, "UPDATE pq_worker SET stop = true WHERE name = 'w1'")
    assert dequeue(raw_conn, ["default"], "w1") is None
    assert get_job(raw_conn, job_id)["status"] == "queued"
    assert dequeue(raw_conn, ["default"], "w2")["id"] == job_id


def test_queue_default_timeout_is_copied_into_jobs_without_one(raw_conn: connection) -> None:
    execute(raw_conn, """SELECT pq_create_queue('slow', '{"timeout": 42}')""")
    without = enqueue(raw_conn, "slow")
    with_own = enqueue(raw_conn, "slow", timeout=7)
    assert get_job(raw_conn, without)["timeout"] is None
    assert dequeue(raw_conn, ["slow"])["timeout"] == 42
    assert get_job(raw_conn, without)["timeout"] == 42
    assert dequeue(raw_conn, ["slow"])["timeout"] == 7
    assert get_job(raw_conn, with_own)["timeout"] == 7


def test_job_timeout_stays_null_on_a_queue_without_default(raw_conn: connection) -> None:
    enqueue(raw_conn, "default")
    assert dequeue(raw_conn, ["default"])["timeout"] is None


def test_timeout_options_reach_the_server(connect: Callable[..., connection]) -> None:
    # Guard for the two lock tests above: had pq_dequeue waited on a lock, these settings
    # would have made it fail rather than hang.
    conn = connect(options=NO_WAIT)
    assert fetch_value(conn, "SHOW lock_timeout") == "500ms"
    assert fetch_value(conn, "SHOW statement_timeout") == "1s"


def test_a_job_whose_queue_row_is_gone_is_still_dequeued(raw_conn: connection) -> None:
    job_id = enqueue(raw_conn, "orphan")
    execute(raw_conn, "DELETE FROM pq_queue WHERE name = 'orphan'")

    job = dequeue(raw_conn, ["orphan"])

    assert job is not None and job["id"] == job_id


def test_a_claim_does_not_walk_past_older_finished_jobs(raw_conn: connection) -> None:
    # Kept results (result_ttl) leave finished rows with lower ids than every queued job.
    # When most rows look queued, "queue = $1 ORDER BY id LIMIT 1" lets the planner walk
    # the primary key past all of them; the claim must go through pq_job_queued instead.
    # The transaction's own statistics count the index entries read, so no timing is
    # involved: the old plan read the 5,000 finished rows' entries, the right one reads one.
    execute(
        raw_conn,
        "INSERT INTO pq_job (queue, origin, status, func) "
        "SELECT 'default', 'default', 'finished', %s FROM generate_series(1, 5000)",
        (FUNC,),
    )
    execute(
        raw_conn,
        "SELECT pq_enqueue_many('default', array_fill(%s::text, ARRAY[20000]))",
        (FUNC,),
    )
    execute(raw_conn, "ANALYZE pq_job")
    pkey_reads = "SELECT pg_stat_get_xact_tuples_returned('pq_job_pkey'::regclass)"
    execute(raw_conn, "BEGIN")
    before = fetch_value(raw_conn, pkey_reads)
    for _ in range(3):
        assert dequeue(raw_conn, ["default"]) is not None
    assert fetch_value(raw_conn, pkey_reads) - before < 50
    execute(raw_conn, "COMMIT")


def test_claims_planned_on_an_empty_table_still_use_the_indexes(raw_conn: connection) -> None:
    # Workers start on an empty queue, and statistics saying "empty" outlive the next burst
    # of jobs: claims and finishes planned on them scanned the whole table. The
    # transaction's own statistics count sequential scans of pq_job.
    execute(raw_conn, "VACUUM ANALYZE pq_job")
    assert dequeue(raw_conn, ["default"]) is None
    execute(
        raw_conn, "SELECT pq_enqueue_many('default', array_fill(%s::text, ARRAY[2000]))", (FUNC,)
    )
    seq_scans = "SELECT pg_stat_get_xact_numscans('pq_job'::regclass)"
    execute(raw_conn, "BEGIN")
    before = fetch_value(raw_conn, seq_scans)
    done: list[int] = []
    for _ in range(10):
        rows = fetch_all(
            raw_conn,
            "SELECT id FROM pq_finish_dequeue(%s::bigint[], %s::jsonb[], 'w1', 0, "
            "ARRAY['default'], 1)",
            (done, [None] * len(done)),
        )
        assert len(rows) == 1
        done = [rows[0][0]]
    assert fetch_value(raw_conn, seq_scans) == before
    execute(raw_conn, "COMMIT")
