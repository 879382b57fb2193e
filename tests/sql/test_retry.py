"""Priorities and retries in SQL: the claim order, pq_fail's retries, attempts and errors."""

from __future__ import annotations

import datetime
from typing import Any

from psycopg2.extensions import connection

from tests.sql.helpers import (
    CHANNEL,
    FUNC,
    dequeue,
    execute,
    fetch_all,
    fetch_value,
    get_job,
    listen,
    notifications,
    raises_pq,
)
from tests.sql.test_schedule import schedule, schedule_cron

CLAIMING_WORKERS = ("w1", "w2")


def enqueue(conn: connection, queue: str = "default", **options: Any) -> int:
    return fetch_value(
        conn,
        "SELECT pq_enqueue(%s, %s, priority => %s, max_retries => %s,"
        " retry_intervals => %s::integer[])",
        (
            queue,
            FUNC,
            options.get("priority", 0),
            options.get("max_retries", 0),
            options.get("retry_intervals"),
        ),
    )


def claim(conn: connection, queues: list[str] | None = None, worker: str = "w1") -> int | None:
    job = dequeue(conn, ["default"] if queues is None else queues, worker)
    return None if job is None else job["id"]


def fail(conn: connection, job_id: int, text: str = "Boom", retry: bool = True) -> None:
    assert fetch_value(conn, "SELECT pq_fail(%s, 'w1', %s, true, %s)", (job_id, text, retry))


def claim_all(conn: connection, queues: list[str] | None) -> list[int]:
    claimed = []
    with conn.cursor() as cursor:
        cursor.execute("SELECT id FROM pq_dequeue_many(%s, 'w1', 100)", (queues,))
        claimed = [row[0] for row in cursor.fetchall()]
    return claimed


def test_a_queue_hands_out_higher_priorities_first_then_fifo(raw_conn: connection) -> None:
    ids = {p: enqueue(raw_conn, priority=p) for p in (0, 10, -5)}
    second_ten = enqueue(raw_conn, priority=10)
    top = enqueue(raw_conn, priority=100)
    order = [claim(raw_conn) for _ in range(5)]
    assert order == [top, ids[10], second_ten, ids[0], ids[-5]]


def test_queue_order_comes_before_priority(raw_conn: connection) -> None:
    low_first = enqueue(raw_conn, "a", priority=-100)
    high_second = enqueue(raw_conn, "b", priority=100)
    assert claim_all(raw_conn, ["a", "b"]) == [low_first, high_second]


def test_all_queues_claim_by_priority_within_each_queue(raw_conn: connection) -> None:
    a_low, a_high = enqueue(raw_conn, "a", priority=-1), enqueue(raw_conn, "a", priority=1)
    b_low, b_high = enqueue(raw_conn, "b"), enqueue(raw_conn, "b", priority=50)
    assert claim_all(raw_conn, None) == [a_high, a_low, b_high, b_low]


def test_enqueue_many_takes_the_options(raw_conn: connection) -> None:
    plain = enqueue(raw_conn)
    ids = [
        row[0]
        for row in fetch_all(
            raw_conn,
            "SELECT * FROM pq_enqueue_many('default', ARRAY[%s, %s], priority => 5,"
            " max_retries => 2, retry_intervals => '{7}')",
            (FUNC, FUNC),
        )
    ]
    rows = [get_job(raw_conn, job_id) for job_id in ids]
    assert [(r["priority"], r["max_retries"], r["retry_intervals"]) for r in rows] == [
        (5, 2, [7]),
        (5, 2, [7]),
    ]
    assert claim(raw_conn) == ids[0], "the batch's priority 5 did not come before priority 0"
    assert claim(raw_conn) == ids[1]
    assert claim(raw_conn) == plain


def test_bad_priorities_and_retries_are_refused(raw_conn: connection) -> None:
    with raises_pq("PQ001", r"^pq_enqueue: priority must be from -100 to 100 .*, got 101$"):
        enqueue(raw_conn, priority=101)
    with raises_pq("PQ001", r"^pq_enqueue: max_retries must be 0 or more, got -1$"):
        enqueue(raw_conn, max_retries=-1)
    with raises_pq("PQ001", r"^pq_enqueue: retry_intervals must be seconds, 0 or more"):
        enqueue(raw_conn, retry_intervals=[10, -1])
    with raises_pq("PQ001", r"^pq_enqueue: retry_intervals must be seconds, 0 or more"):
        enqueue(raw_conn, retry_intervals=[10, None])
    with raises_pq("PQ001", r"^pq_enqueue_many: priority must be from -100 to 100"):
        fetch_value(raw_conn, "SELECT pq_enqueue_many('default', '{}', priority => -101)")
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_job") == 0


def test_a_failed_run_is_retried_until_the_retries_are_used_up(raw_conn: connection) -> None:
    job_id = enqueue(raw_conn, max_retries=2)
    for attempt in (1, 2):
        assert claim(raw_conn) == job_id
        fail(raw_conn, job_id, f"Boom {attempt}")
        job = get_job(raw_conn, job_id)
        assert (job["status"], job["queue"], job["attempts"]) == ("queued", "default", attempt)
        assert job["worker"] is None
    assert claim(raw_conn) == job_id
    fail(raw_conn, job_id, "Boom 3")

    job = get_job(raw_conn, job_id)
    assert (job["status"], job["queue"], job["attempts"]) == ("failed", "failed", 3)
    assert job["exc_info"] == "Boom 3"
    assert [(e["attempt"], e["exc_info"], e["worker"]) for e in job["errors"]] == [
        (1, "Boom 1", "w1"),
        (2, "Boom 2", "w1"),
        (3, "Boom 3", "w1"),
    ]


def test_a_retry_waits_its_interval_and_the_last_interval_repeats(raw_conn: connection) -> None:
    job_id = enqueue(raw_conn, max_retries=3, retry_intervals=[10, 30])
    listen(raw_conn)
    for attempt, seconds in ((1, 10), (2, 30), (3, 30)):
        assert claim(raw_conn) == job_id
        before = fetch_value(raw_conn, "SELECT now()")
        fail(raw_conn, job_id)
        job = get_job(raw_conn, job_id)
        assert job["status"] == "scheduled"
        due = job["scheduled_for"] - before
        assert datetime.timedelta(seconds=seconds) <= due < datetime.timedelta(seconds=seconds + 5)
        assert (CHANNEL, "default") in notifications(raw_conn, timeout=0.3)
        assert claim(raw_conn) is None, f"retry {attempt} ran before its interval"
        execute(raw_conn, "UPDATE pq_job SET scheduled_for = now() WHERE id = %s", (job_id,))
    assert claim(raw_conn) == job_id
    fail(raw_conn, job_id)
    assert get_job(raw_conn, job_id)["status"] == "failed"


def test_retry_false_fails_at_once(raw_conn: connection) -> None:
    job_id = enqueue(raw_conn, max_retries=5)
    claim(raw_conn)
    fail(raw_conn, job_id, retry=False)
    job = get_job(raw_conn, job_id)
    assert (job["status"], job["attempts"], len(job["errors"])) == ("failed", 1, 1)


def test_an_abandoned_job_with_retries_left_is_retried(raw_conn: connection) -> None:
    execute(raw_conn, "SELECT pq_register_worker('dying', NULL, 1)")
    kept = enqueue(raw_conn, max_retries=1)
    lost = enqueue(raw_conn)
    assert claim(raw_conn, worker="dying") == kept
    assert claim(raw_conn, worker="dying") == lost
    execute(
        raw_conn, "UPDATE pq_worker SET expires_at = now() - interval '1 s' WHERE name = 'dying'"
    )
    assert fetch_value(raw_conn, "SELECT pq_reap_workers()") == 2

    retried, failed = get_job(raw_conn, kept), get_job(raw_conn, lost)
    assert (retried["status"], retried["queue"]) == ("queued", "default")
    assert retried["errors"][0]["exc_info"].startswith("AbandonedJob: worker dying stopped")
    assert retried["errors"][0]["worker"] == "dying"
    assert (failed["status"], failed["queue"]) == ("failed", "failed")
    assert failed["exc_info"].startswith("AbandonedJob: worker dying stopped")


def test_a_released_claim_is_not_an_attempt(raw_conn: connection) -> None:
    job_id = enqueue(raw_conn)
    claim(raw_conn)
    assert get_job(raw_conn, job_id)["attempts"] == 1
    assert fetch_value(raw_conn, "SELECT pq_release(%s, 'w1')", ([job_id],)) == 1
    assert get_job(raw_conn, job_id)["attempts"] == 0


def test_a_retried_flow_job_keeps_the_flow_going(raw_conn: connection) -> None:
    flow_id = fetch_value(raw_conn, "SELECT pq_flow_create('default')")
    first = fetch_value(
        raw_conn, "SELECT pq_flow_enqueue(%s, %s, max_retries => 1)", (flow_id, FUNC)
    )
    second = fetch_value(raw_conn, "SELECT pq_flow_enqueue(%s, %s)", (flow_id, FUNC))
    fetch_value(raw_conn, "SELECT pq_flow_start(%s)", (flow_id,))
    assert claim(raw_conn) == first
    fail(raw_conn, first)
    assert (
        fetch_value(raw_conn, "SELECT status FROM pq_flow WHERE id = %s", (flow_id,)) == "started"
    )
    assert claim(raw_conn) == first
    assert fetch_value(raw_conn, "SELECT pq_finish(%s, 'w1')", (first,))
    assert get_job(raw_conn, second)["status"] == "queued"


def test_the_next_run_of_a_repeating_job_keeps_its_priority_and_retries(
    raw_conn: connection,
) -> None:
    job_id = schedule(
        raw_conn,
        scheduled_for=datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1),
        repeat=-1,
        repeat_interval="1 hour",
        priority=7,
        max_retries=2,
        retry_intervals=[5],
    )
    assert options_of(raw_conn, job_id) == (7, 2, [5])
    assert claim(raw_conn) == job_id
    [following] = fetch_all(raw_conn, "SELECT id FROM pq_job WHERE status = 'scheduled'")
    assert options_of(raw_conn, following[0]) == (7, 2, [5])


def test_cron_ticks_take_the_priority_and_retries(raw_conn: connection) -> None:
    tick = schedule_cron(raw_conn, "minutely", "* * * * *", priority=-3, max_retries=1)
    assert options_of(raw_conn, tick) == (-3, 1, None)
    execute(raw_conn, "UPDATE pq_job SET scheduled_for = now() - interval '1 second'")
    assert claim(raw_conn) == tick
    [following] = fetch_all(raw_conn, "SELECT id FROM pq_job WHERE status = 'scheduled'")
    assert options_of(raw_conn, following[0]) == (-3, 1, None)


def test_registering_a_schedule_with_other_options_replaces_its_pending_run(
    raw_conn: connection,
) -> None:
    first = schedule_cron(raw_conn, "nightly", "0 3 * * *", priority=5)
    assert schedule_cron(raw_conn, "nightly", "0 3 * * *", priority=5) == first  # unchanged
    second = schedule_cron(raw_conn, "nightly", "0 3 * * *", priority=5, max_retries=3)
    assert options_of(raw_conn, second) == (5, 3, None)
    third = schedule(raw_conn, name="nightly", repeat=-1, repeat_interval="1 day", priority=9)
    assert options_of(raw_conn, third) == (9, 0, None)
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_job") == 1


def test_bad_schedule_priorities_and_retries_are_refused(raw_conn: connection) -> None:
    with raises_pq("PQ001", r"^pq_schedule: priority must be from -100 to 100 .*, got -101$"):
        schedule(raw_conn, priority=-101)
    with raises_pq("PQ001", r"^pq_schedule: max_retries must be 0 or more, got -2$"):
        schedule(raw_conn, max_retries=-2)
    with raises_pq("PQ001", r"^pq_schedule_cron: retry_intervals must be seconds, 0 or more"):
        schedule_cron(raw_conn, "nightly", "0 3 * * *", max_retries=1, retry_intervals=[-1])
    with raises_pq("PQ001", r"^pq_schedule_cron: priority must be from -100 to 100"):
        schedule_cron(raw_conn, "nightly", "0 3 * * *", priority=None)
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_job") == 0


def options_of(conn: connection, job_id: int) -> tuple[int, int, list[int] | None]:
    return tuple(
        fetch_all(
            conn,
            "SELECT priority, max_retries, retry_intervals FROM pq_job WHERE id = %s",
            (job_id,),
        )[0]
    )
