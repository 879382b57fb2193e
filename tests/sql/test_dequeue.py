"""pq_dequeue: order, scheduling, locking, serial queues, stopped workers."""

from __future__ import annotations

import datetime
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


# Unregistered workers, claims over all queues (queue_names NULL), pq_next_due.


def test_an_unregistered_worker_gets_no_job_and_pq006(raw_conn: connection) -> None:
    job_id = enqueue(raw_conn, "default")
    with raises_pq("PQ006", r"^pq_dequeue_many: worker 'reaped' is not registered$"):
        dequeue(raw_conn, ["default"], "reaped")
    with raises_pq("PQ006", r"is not registered"):
        fetch_all(
            raw_conn,
            "SELECT * FROM pq_finish_dequeue('{}', '{}', 'reaped', 60, NULL, 5)",
        )
    assert get_job(raw_conn, job_id)["status"] == "queued"


def _claim_all(conn: connection, worker: str = "w1", n: int = 1) -> list[tuple[int, str]]:
    return [
        (job_id, queue)
        for job_id, queue in fetch_all(
            conn, "SELECT id, queue FROM pq_dequeue_many(NULL, %s, %s)", (worker, n)
        )
    ]


def _claim_one_by_one(conn: connection, worker: str = "w1") -> list[tuple[int, str]]:
    claimed = []
    while got := _claim_all(conn, worker):
        claimed += got
    return claimed


def test_null_queue_names_claim_every_queue_but_failed_in_name_order(raw_conn: connection) -> None:
    zeta = enqueue(raw_conn, "zeta")
    alpha = [enqueue(raw_conn, "alpha") for _ in range(2)]
    rowless = enqueue(raw_conn, "mid")
    execute(raw_conn, "DELETE FROM pq_queue WHERE name = 'mid'")  # a queue row is not needed
    due = _schedule_due(raw_conn, "zeta", 10)
    later = enqueue(raw_conn, "alpha", scheduled_for="2999-01-01 00:00+00")
    assert _claim_one_by_one(raw_conn) == [
        (due, "zeta"),
        (alpha[0], "alpha"),
        (alpha[1], "alpha"),
        (rowless, "mid"),
        (zeta, "zeta"),
    ]
    assert get_job(raw_conn, later)["status"] == "scheduled"


def test_null_queue_names_take_serial_queues_in_their_turn_one_at_a_time(
    raw_conn: connection,
) -> None:
    execute(raw_conn, """SELECT pq_create_queue('m-serial', '{"serial": true, "timeout": 9}')""")
    execute(raw_conn, """SELECT pq_create_queue('slow', '{"timeout": 42}')""")
    serial = [enqueue(raw_conn, "m-serial") for _ in range(2)]
    due_serial = _schedule_due(raw_conn, "m-serial", 10)
    before, after, slow = enqueue(raw_conn, "a"), enqueue(raw_conn, "z"), enqueue(raw_conn, "slow")
    assert _claim_one_by_one(raw_conn) == [
        (before, "a"),
        (due_serial, "m-serial"),
        (slow, "slow"),
        (after, "z"),
    ]
    assert get_job(raw_conn, due_serial)["timeout"] == 9
    assert get_job(raw_conn, slow)["timeout"] == 42
    assert _claim_all(raw_conn, "w2", 10) == []  # the serial queue has a started job
    execute(raw_conn, "SELECT pq_finish(%s, 'w1')", (due_serial,))
    assert _claim_all(raw_conn, "w2", 10) == [(serial[0], "m-serial")]


def test_null_queue_names_claim_in_batches_up_to_max_jobs(raw_conn: connection) -> None:
    ids = [enqueue(raw_conn, queue) for queue in ("b", "a", "serial", "c", "c", "serial")]
    assert sorted(job_id for job_id, _ in _claim_all(raw_conn, n=3)) == [ids[0], ids[1], ids[3]]
    assert sorted(job_id for job_id, _ in _claim_all(raw_conn, n=3)) == [ids[2], ids[4]]
    assert _claim_all(raw_conn, n=3) == []  # the serial queue's next job waits


MANY_QUEUES = (
    "INSERT INTO pq_queue (name) SELECT 'q' || g FROM generate_series(1, 20000) g"
    " ON CONFLICT DO NOTHING"
)


def test_a_claim_over_all_of_20000_queues_reads_no_queue_list(raw_conn: connection) -> None:
    execute(raw_conn, MANY_QUEUES)
    execute(raw_conn, "ANALYZE pq_queue")
    last = enqueue(raw_conn, "q9999")
    execute(raw_conn, "SELECT pq_remove_empty_queues()")  # keeps q9999: it has a job
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_queue") == 4
    assert _claim_all(raw_conn) == [(last, "q9999")]
    execute(raw_conn, MANY_QUEUES)
    # An empty claim reads the serial queues' index and probes pq_job's indexes, never the
    # 20,000 queue rows: about 0.25 ms, where a loop over the names took 0.5 s.
    started = time.monotonic()
    for _ in range(50):
        assert _claim_all(raw_conn, n=10) == []
    assert (time.monotonic() - started) / 50 < 0.05


def test_next_due_over_all_queues_and_never_beyond_year_9999(raw_conn: connection) -> None:
    assert fetch_value(raw_conn, "SELECT pq_next_due(NULL)") is None
    soon = datetime.datetime(2999, 1, 1, tzinfo=datetime.UTC)
    enqueue(raw_conn, "b", scheduled_for=soon)
    enqueue(raw_conn, "a", scheduled_for=soon + datetime.timedelta(days=1))
    # A row older than the enqueue check: a time no Python datetime holds.
    execute(
        raw_conn,
        "INSERT INTO pq_job (queue, origin, status, func, scheduled_for)"
        " VALUES ('a', 'a', 'scheduled', 'm.f', 'infinity'),"
        " ('a', 'a', 'scheduled', 'm.f', '10000-06-01')",
    )
    assert fetch_value(raw_conn, "SELECT pq_next_due(NULL)") == soon
    assert fetch_value(raw_conn, "SELECT pq_next_due(ARRAY['a'])") == soon + datetime.timedelta(
        days=1
    )


def test_remove_empty_queues_keeps_queues_in_use_or_with_options(raw_conn: connection) -> None:
    for queue in ("waiting", "later", "running", "broken"):
        enqueue(raw_conn, queue)
    enqueue(raw_conn, "later-only", scheduled_for="2999-01-01 00:00+00")
    execute(raw_conn, "DELETE FROM pq_job WHERE queue = 'later'")
    dequeue(raw_conn, ["running"], "w1")
    broken = dequeue(raw_conn, ["broken"], "w1")["id"]
    execute(raw_conn, "SELECT pq_fail(%s, 'w1', 'boom', false)", (broken,))
    execute(raw_conn, """SELECT pq_create_queue('with-options', '{"timeout": 5}')""")
    done = enqueue(raw_conn, "done")
    dequeue(raw_conn, ["done"], "w1")
    execute(raw_conn, "SELECT pq_finish(%s, 'w1')", (done,))
    assert fetch_value(raw_conn, "SELECT pq_remove_empty_queues()") == 2
    assert job_ids(raw_conn, "queue = 'done'") == [done]  # a result does not keep its queue
    remaining = [name for (name,) in fetch_all(raw_conn, "SELECT name FROM pq_queue ORDER BY name")]
    assert remaining == [
        "broken",
        "default",
        "failed",
        "later-only",
        "running",
        "serial",
        "waiting",
        "with-options",
    ]
    enqueue(raw_conn, "done")  # the next enqueue brings the row back
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_queue WHERE name = 'done'") == 1
