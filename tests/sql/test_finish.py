"""Ending jobs: pq_finish, pq_fail, pq_requeue, pq_expire_jobs, pq_count, pq_empty_queue."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

import pytest
from psycopg2.extensions import connection

from tests.sql.helpers import (
    CHANNEL,
    dequeue,
    enqueue,
    execute,
    fetch_all,
    fetch_value,
    get_job,
    job_ids,
    listen,
    notifications,
    raises_pq,
)

# The names this module claims jobs with, registered before each test (conftest.py).
CLAIMING_WORKERS = (
    "w1",
    "w2",
    "owner",
    "worker-7",
    "holder",
    "other",
    *(f"w{i}" for i in range(8)),
)


def _started(conn: connection, queue: str = "default", worker: str = "w1", **options: Any) -> int:
    """Enqueue a job and have ``worker`` dequeue it; return its id."""
    job_id = enqueue(conn, queue, **options)
    job = dequeue(conn, [queue], worker)
    assert job is not None and job["id"] == job_id
    return job_id


def _finish(
    conn: connection,
    job_id: int,
    worker: str = "w1",
    result: Any = None,
    default_result_ttl: int | None = 500,
) -> bool:
    return fetch_value(
        conn,
        "SELECT pq_finish(%s, %s, %s::jsonb, %s)",
        (job_id, worker, json.dumps(result), default_result_ttl),
    )


def _fail(conn: connection, job_id: int, worker: str = "w1", move: bool = True) -> bool:
    return fetch_value(
        conn,
        "SELECT pq_fail(%s, %s, %s, %s)",
        (job_id, worker, "Traceback...\nValueError: boom", move),
    )


def test_finish_with_result_ttl_zero_deletes_the_job(raw_conn: connection) -> None:
    job_id = _started(raw_conn, result_ttl=0)
    assert _finish(raw_conn, job_id, result={"ok": True}) is True
    assert get_job(raw_conn, job_id) is None


def test_finish_with_default_result_ttl_zero_deletes_the_job(raw_conn: connection) -> None:
    job_id = _started(raw_conn)
    assert _finish(raw_conn, job_id, default_result_ttl=0) is True
    assert get_job(raw_conn, job_id) is None


def test_finish_with_result_ttl_minus_one_keeps_the_job_forever(raw_conn: connection) -> None:
    job_id = _started(raw_conn, result_ttl=-1)
    assert _finish(raw_conn, job_id, result=[1, "two"]) is True
    job = get_job(raw_conn, job_id)
    assert job["status"] == "finished"
    assert job["result"] == [1, "two"]
    assert job["expires_at"] is None
    assert job["ended_at"] is not None


def test_finish_with_result_ttl_keeps_the_result_that_long(raw_conn: connection) -> None:
    job_id = _started(raw_conn, result_ttl=90)
    before = fetch_value(raw_conn, "SELECT now()")
    assert _finish(raw_conn, job_id, result="done", default_result_ttl=5) is True
    job = get_job(raw_conn, job_id)
    assert job["status"] == "finished"
    assert job["result"] == "done"
    assert job["expires_at"] - job["ended_at"] == datetime.timedelta(seconds=90)
    assert before <= job["ended_at"] <= before + datetime.timedelta(seconds=5)


def test_finish_without_result_ttl_uses_the_default(raw_conn: connection) -> None:
    job_id = _started(raw_conn)
    assert _finish(raw_conn, job_id, default_result_ttl=30) is True
    job = get_job(raw_conn, job_id)
    assert job["expires_at"] - job["ended_at"] == datetime.timedelta(seconds=30)


def test_finish_default_result_ttl_defaults_to_500(raw_conn: connection) -> None:
    job_id = _started(raw_conn)
    assert fetch_value(raw_conn, "SELECT pq_finish(%s, 'w1')", (job_id,)) is True
    job = get_job(raw_conn, job_id)
    assert job["expires_at"] - job["ended_at"] == datetime.timedelta(seconds=500)
    assert job["result"] is None


def test_finishing_twice_returns_false_and_changes_nothing(raw_conn: connection) -> None:
    job_id = _started(raw_conn, result_ttl=-1)
    assert _finish(raw_conn, job_id, result="first") is True
    finished = get_job(raw_conn, job_id)
    assert _finish(raw_conn, job_id, result="second") is False
    assert get_job(raw_conn, job_id) == finished


def test_finishing_another_workers_job_returns_false(raw_conn: connection) -> None:
    job_id = _started(raw_conn, worker="owner")
    started = get_job(raw_conn, job_id)
    assert _finish(raw_conn, job_id, worker="intruder", result="stolen") is False
    assert _finish(raw_conn, job_id, worker="intruder", default_result_ttl=0) is False
    assert get_job(raw_conn, job_id) == started


def test_finishing_a_missing_job_returns_false(raw_conn: connection) -> None:
    assert _finish(raw_conn, 123456) is False


def test_fail_moves_the_job_to_the_failed_queue(raw_conn: connection) -> None:
    job_id = _started(raw_conn, "emails")
    assert _fail(raw_conn, job_id) is True
    job = get_job(raw_conn, job_id)
    assert job["status"] == "failed"
    assert job["queue"] == "failed"
    assert job["origin"] == "emails"
    assert job["exc_info"] == "Traceback...\nValueError: boom"
    assert job["ended_at"] is not None
    assert job["expires_at"] is None
    assert fetch_value(raw_conn, "SELECT pq_count('failed')") == 1


def test_fail_without_moving_keeps_the_job_in_its_queue(raw_conn: connection) -> None:
    job_id = _started(raw_conn, "emails")
    assert _fail(raw_conn, job_id, move=False) is True
    job = get_job(raw_conn, job_id)
    assert job["status"] == "failed"
    assert job["queue"] == job["origin"] == "emails"
    assert job["exc_info"].endswith("ValueError: boom")
    assert fetch_value(raw_conn, "SELECT pq_count('failed')") == 0


def test_fail_of_a_job_not_started_by_the_worker_returns_false(raw_conn: connection) -> None:
    job_id = _started(raw_conn, worker="owner")
    queued = enqueue(raw_conn, "default")
    assert _fail(raw_conn, job_id, worker="intruder") is False
    assert _fail(raw_conn, queued, worker="owner") is False
    assert get_job(raw_conn, job_id)["status"] == "started"
    assert get_job(raw_conn, queued)["status"] == "queued"


def test_requeue_puts_a_failed_job_back_on_its_origin_and_notifies(
    raw_conn: connection, connect: Callable[..., connection]
) -> None:
    job_id = _started(raw_conn, "emails")
    _fail(raw_conn, job_id)
    failed_at = get_job(raw_conn, job_id)["enqueued_at"]
    listener = connect()
    listen(listener)

    execute(raw_conn, "SELECT pq_requeue(%s)", (job_id,))

    job = get_job(raw_conn, job_id)
    assert job["status"] == "queued"
    assert job["queue"] == job["origin"] == "emails"
    assert job["exc_info"] is None
    assert job["worker"] is None
    assert job["started_at"] is None
    assert job["ended_at"] is None
    assert job["enqueued_at"] > failed_at
    assert notifications(listener, count=1) == [(CHANNEL, "emails")]
    assert dequeue(raw_conn, ["emails"], "w2")["id"] == job_id


def test_requeue_of_a_job_failed_in_place(raw_conn: connection) -> None:
    job_id = _started(raw_conn, "emails")
    _fail(raw_conn, job_id, move=False)
    execute(raw_conn, "SELECT pq_requeue(%s)", (job_id,))
    job = get_job(raw_conn, job_id)
    assert (job["status"], job["queue"]) == ("queued", "emails")


def test_requeue_of_a_missing_job_raises_pq003(raw_conn: connection) -> None:
    with raises_pq("PQ003", r"^pq_requeue: no job with id 424242$"):
        execute(raw_conn, "SELECT pq_requeue(424242)")


@pytest.mark.parametrize("status", ["queued", "started", "finished"])
def test_requeue_of_a_job_that_has_not_failed_raises_pq004(
    raw_conn: connection, status: str
) -> None:
    job_id = enqueue(raw_conn, "default", result_ttl=-1)
    if status != "queued":
        dequeue(raw_conn, ["default"], "w1")
    if status == "finished":
        _finish(raw_conn, job_id)
    with raises_pq(
        "PQ004", rf"^pq_requeue: job {job_id} is {status}, only failed jobs can be requeued$"
    ):
        execute(raw_conn, "SELECT pq_requeue(%s)", (job_id,))
    assert get_job(raw_conn, job_id)["status"] == status


def test_expire_jobs_deletes_only_expired_rows(raw_conn: connection) -> None:
    expired = _started(raw_conn, result_ttl=60)
    _finish(raw_conn, expired)
    execute(
        raw_conn,
        "UPDATE pq_job SET expires_at = now() - interval '1 second' WHERE id = %s",
        (expired,),
    )
    not_yet = _started(raw_conn, result_ttl=60)
    _finish(raw_conn, not_yet)
    forever = _started(raw_conn, result_ttl=-1)
    _finish(raw_conn, forever)
    failed = _started(raw_conn)
    _fail(raw_conn, failed)
    queued = enqueue(raw_conn, "default")

    assert fetch_value(raw_conn, "SELECT pq_expire_jobs()") == 1
    assert job_ids(raw_conn) == sorted([not_yet, forever, failed, queued])
    assert fetch_value(raw_conn, "SELECT pq_expire_jobs()") == 0


def test_count_counts_waiting_jobs(raw_conn: connection) -> None:
    _started(raw_conn, "emails")
    finished = _started(raw_conn, "emails", result_ttl=-1)
    _finish(raw_conn, finished)
    failed = _started(raw_conn, "emails")
    _fail(raw_conn, failed)
    later = fetch_value(raw_conn, "SELECT now() + interval '1 hour'")
    enqueue(raw_conn, "emails")
    enqueue(raw_conn, "emails")
    enqueue(raw_conn, "emails", scheduled_for=later)
    enqueue(raw_conn, "other")

    assert fetch_value(raw_conn, "SELECT pq_count('emails')") == 3
    assert fetch_value(raw_conn, "SELECT pq_count('other')") == 1
    assert fetch_value(raw_conn, "SELECT pq_count('failed')") == 1
    assert fetch_value(raw_conn, "SELECT pq_count('nowhere')") == 0


def test_empty_queue_deletes_waiting_jobs_and_leaves_started_ones(raw_conn: connection) -> None:
    later = fetch_value(raw_conn, "SELECT now() + interval '1 hour'")
    started = _started(raw_conn, "emails")
    enqueue(raw_conn, "emails")
    enqueue(raw_conn, "emails", scheduled_for=later)
    other = enqueue(raw_conn, "other")

    assert fetch_value(raw_conn, "SELECT pq_empty_queue('emails')") == 2
    assert job_ids(raw_conn) == [started, other]
    assert fetch_value(raw_conn, "SELECT pq_count('emails')") == 0


def test_empty_failed_queue_deletes_the_failed_jobs(raw_conn: connection) -> None:
    failed = [_started(raw_conn, "emails") for _ in range(2)]
    for job_id in failed:
        _fail(raw_conn, job_id)
    queued = enqueue(raw_conn, "emails")
    assert fetch_value(raw_conn, "SELECT pq_empty_queue('failed')") == 2
    assert job_ids(raw_conn) == [queued]


# Outcomes a worker could not store are reported as WARNINGs, never lost silently.


def _warnings(conn: connection) -> list[str]:
    found = [notice for notice in conn.notices if notice.startswith("WARNING:")]
    conn.notices.clear()
    return found


def test_finish_warns_about_jobs_no_longer_started_by_the_worker(raw_conn: connection) -> None:
    mine, reaped, ttl_zero = _started(raw_conn), _started(raw_conn), _started(raw_conn)
    execute(raw_conn, "UPDATE pq_job SET status = 'failed' WHERE id = %s", (reaped,))
    raw_conn.notices.clear()
    stored = fetch_value(
        raw_conn,
        "SELECT pq_finish_many(%s::bigint[], 'w1', ARRAY['1', '2', '3', '4']::jsonb[], 0)",
        ([mine, reaped, ttl_zero, 999],),
    )
    assert stored == 2
    warnings = _warnings(raw_conn)
    assert len(warnings) == 1
    assert f"the outcome of job(s) {reaped}, 999 was not stored" in warnings[0]
    assert "worker w1" in warnings[0]


def test_finishing_again_stored_jobs_does_not_warn(raw_conn: connection) -> None:
    job_id = _started(raw_conn)
    raw_conn.notices.clear()
    assert _finish(raw_conn, job_id) is True
    assert _finish(raw_conn, job_id) is False  # a retry after a lost connection
    assert _warnings(raw_conn) == []


def test_finish_dequeue_and_fail_warn_too(raw_conn: connection) -> None:
    job_id = _started(raw_conn)
    execute(raw_conn, "UPDATE pq_job SET worker = 'w2' WHERE id = %s", (job_id,))
    raw_conn.notices.clear()
    fetch_all(
        raw_conn,
        "SELECT * FROM pq_finish_dequeue(%s::bigint[], '{null}', 'w1', 60, '{default}', 1)",
        ([job_id],),
    )
    assert [f"job(s) {job_id} was not stored" in w for w in _warnings(raw_conn)] == [True]
    assert _fail(raw_conn, job_id) is False
    assert [f"the failure of job {job_id} was not stored" in w for w in _warnings(raw_conn)] == [
        True
    ]
