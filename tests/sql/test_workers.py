"""Workers: registration, heartbeats, reaping dead workers, stopping."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable
from typing import Any

from psycopg2.extensions import connection

from tests.sql.helpers import (
    CHANNEL,
    dequeue,
    enqueue,
    execute,
    fetch_all,
    fetch_value,
    get_job,
    listen,
    notifications,
    raises_pq,
)


def _register(
    conn: connection,
    name: str,
    *,
    queues: list[str] | None = None,
    ttl: int = 60,
    hostname: str = "host-a",
    pid: int | None = 100,
    keep_jobs: list[int] | None = None,
) -> None:
    execute(
        conn,
        "SELECT pq_register_worker(%s, %s, %s, %s, %s, %s::bigint[])",
        (name, queues or ["default"], ttl, hostname, pid, keep_jobs or []),
    )


def _worker(conn: connection, name: str) -> dict[str, Any] | None:
    rows = fetch_all(
        conn,
        "SELECT hostname, pid, queues, stop, expires_at - heartbeat_at FROM pq_worker"
        " WHERE name = %s",
        (name,),
    )
    if not rows:
        return None
    hostname, pid, queues, stop, ttl = rows[0]
    return {"hostname": hostname, "pid": pid, "queues": queues, "stop": stop, "ttl": ttl}


def _expire(conn: connection, name: str) -> None:
    """Make a worker's heartbeat run out, as if it had died a while ago."""
    execute(
        conn,
        "UPDATE pq_worker SET expires_at = now() - interval '1 second' WHERE name = %s",
        (name,),
    )


def _started(conn: connection, worker: str, queue: str = "default") -> int:
    job_id = enqueue(conn, queue)
    assert dequeue(conn, [queue], worker)["id"] == job_id
    return job_id


def test_register_worker_records_it(raw_conn: connection) -> None:
    _register(raw_conn, "w1", queues=["high", "default"], ttl=45, hostname="box", pid=4321)
    assert _worker(raw_conn, "w1") == {
        "hostname": "box",
        "pid": 4321,
        "queues": ["high", "default"],
        "stop": False,
        "ttl": datetime.timedelta(seconds=45),
    }


def test_register_worker_rejects_a_ttl_that_is_not_positive(raw_conn: connection) -> None:
    with raises_pq(
        "PQ001", r"^pq_register_worker: ttl must be a positive number of seconds, got 0$"
    ):
        _register(raw_conn, "w1", ttl=0)
    assert _worker(raw_conn, "w1") is None


def test_a_live_name_taken_from_another_host_raises_pq005(raw_conn: connection) -> None:
    _register(raw_conn, "w1", hostname="host-a", pid=100)
    with raises_pq(
        "PQ005",
        r"^pq_register_worker: a live worker named w1 is already registered"
        r" \(host host-a, pid 100\)$",
    ) as info:
        _register(raw_conn, "w1", hostname="host-b", pid=100)
    assert "--name" in info.value.diag.message_hint
    assert _worker(raw_conn, "w1")["hostname"] == "host-a"


def test_a_live_name_taken_by_another_pid_raises_pq005(raw_conn: connection) -> None:
    _register(raw_conn, "w1", hostname="host-a", pid=100)
    with raises_pq("PQ005", r"a live worker named w1 is already registered"):
        _register(raw_conn, "w1", hostname="host-a", pid=101)
    assert _worker(raw_conn, "w1")["pid"] == 100


def test_the_name_of_a_dead_worker_can_be_taken(raw_conn: connection) -> None:
    _register(raw_conn, "w1", hostname="host-a", pid=100)
    _expire(raw_conn, "w1")
    _register(raw_conn, "w1", hostname="host-b", pid=200)
    assert _worker(raw_conn, "w1")["hostname"] == "host-b"


def test_heartbeat_returns_the_stop_flag_and_extends_the_ttl(raw_conn: connection) -> None:
    _register(raw_conn, "w1", ttl=10)
    assert fetch_value(raw_conn, "SELECT pq_heartbeat('w1', 90)") is False
    assert _worker(raw_conn, "w1")["ttl"] == datetime.timedelta(seconds=90)
    execute(raw_conn, "UPDATE pq_worker SET stop = true WHERE name = 'w1'")
    assert fetch_value(raw_conn, "SELECT pq_heartbeat('w1', 90)") is True


def test_heartbeat_of_an_unknown_worker_returns_null(raw_conn: connection) -> None:
    assert fetch_value(raw_conn, "SELECT pq_heartbeat('ghost', 60)") is None
    assert _worker(raw_conn, "ghost") is None


def test_reap_workers_fails_the_jobs_of_an_expired_worker(raw_conn: connection) -> None:
    _register(raw_conn, "dead", ttl=1)
    _register(raw_conn, "alive", ttl=60, pid=200)
    abandoned = _started(raw_conn, "dead", "emails")
    running = _started(raw_conn, "alive")
    _expire(raw_conn, "dead")

    assert fetch_value(raw_conn, "SELECT pq_reap_workers()") == 1

    assert _worker(raw_conn, "dead") is None
    assert _worker(raw_conn, "alive") is not None
    job = get_job(raw_conn, abandoned)
    assert job["status"] == "failed"
    assert job["queue"] == "failed"
    assert job["origin"] == "emails"
    assert job["exc_info"].startswith("AbandonedJob: worker dead stopped")
    assert job["ended_at"] is not None
    assert get_job(raw_conn, running)["status"] == "started"
    assert fetch_value(raw_conn, "SELECT pq_reap_workers()") == 0


def test_a_worker_is_reaped_once_its_ttl_has_passed(raw_conn: connection) -> None:
    _register(raw_conn, "w1", ttl=1)
    job_id = _started(raw_conn, "w1")
    assert fetch_value(raw_conn, "SELECT pq_reap_workers()") == 0
    assert _worker(raw_conn, "w1") is not None
    execute(raw_conn, "SELECT pg_sleep(1.2)")
    assert fetch_value(raw_conn, "SELECT pq_reap_workers()") == 1
    assert _worker(raw_conn, "w1") is None
    assert get_job(raw_conn, job_id)["exc_info"].startswith("AbandonedJob")


def test_registering_reaps_dead_workers(raw_conn: connection) -> None:
    _register(raw_conn, "dead")
    job_id = _started(raw_conn, "dead")
    _expire(raw_conn, "dead")
    _register(raw_conn, "newcomer", pid=300)
    assert _worker(raw_conn, "dead") is None
    assert get_job(raw_conn, job_id)["status"] == "failed"


def test_reregistering_puts_back_started_jobs_except_keep_jobs(
    raw_conn: connection, connect: Callable[..., connection]
) -> None:
    _register(raw_conn, "w1", hostname="host-a", pid=100)
    lost, kept, also_lost = (_started(raw_conn, "w1", "emails") for _ in range(3))
    _register(raw_conn, "w2", hostname="host-b", pid=200)
    other = _started(raw_conn, "w2", "emails")
    listener = connect()
    listen(listener)

    _register(raw_conn, "w1", hostname="host-a", pid=100, keep_jobs=[kept], ttl=30)

    for job_id in (lost, also_lost):
        job = get_job(raw_conn, job_id)
        assert (job["status"], job["worker"], job["started_at"]) == ("queued", None, None)
        assert job["queue"] == "emails"
    assert get_job(raw_conn, kept)["status"] == "started"
    assert get_job(raw_conn, kept)["worker"] == "w1"
    assert get_job(raw_conn, other)["worker"] == "w2"
    assert _worker(raw_conn, "w1")["ttl"] == datetime.timedelta(seconds=30)
    assert notifications(listener, count=1) == [(CHANNEL, "emails")]
    assert notifications(listener, timeout=0.2) == []  # folded into one


def test_reregistering_without_keep_jobs_puts_back_all_started_jobs(raw_conn: connection) -> None:
    _register(raw_conn, "w1")
    job_id = _started(raw_conn, "w1")
    _register(raw_conn, "w1")
    assert get_job(raw_conn, job_id)["status"] == "queued"


def test_unregister_fails_jobs_the_worker_still_had(raw_conn: connection) -> None:
    _register(raw_conn, "w1")
    _register(raw_conn, "w2", pid=200)
    abandoned = _started(raw_conn, "w1")
    running = _started(raw_conn, "w2")

    execute(raw_conn, "SELECT pq_unregister_worker('w1')")

    assert _worker(raw_conn, "w1") is None
    job = get_job(raw_conn, abandoned)
    assert (job["status"], job["queue"]) == ("failed", "failed")
    assert job["exc_info"].startswith("AbandonedJob: worker w1 stopped")
    assert get_job(raw_conn, running)["status"] == "started"
    assert _worker(raw_conn, "w2") is not None


def test_unregister_of_an_idle_worker_leaves_no_trace(raw_conn: connection) -> None:
    _register(raw_conn, "w1")
    queued = enqueue(raw_conn, "default")
    execute(raw_conn, "SELECT pq_unregister_worker('w1')")
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_worker") == 0
    assert get_job(raw_conn, queued)["status"] == "queued"


def test_stop_workers_sets_stop_and_wakes_everyone(
    raw_conn: connection, connect: Callable[..., connection]
) -> None:
    _register(raw_conn, "w1")
    _register(raw_conn, "w2", pid=200)
    listener = connect()
    listen(listener)

    assert fetch_value(raw_conn, "SELECT pq_stop_workers(ARRAY['w1'])") == 1

    assert _worker(raw_conn, "w1")["stop"] is True
    assert _worker(raw_conn, "w2")["stop"] is False
    assert notifications(listener, count=1) == [(CHANNEL, "")]
    assert fetch_value(raw_conn, "SELECT pq_heartbeat('w1', 60)") is True


def test_stop_workers_without_names_stops_all(raw_conn: connection) -> None:
    _register(raw_conn, "w1")
    _register(raw_conn, "w2", pid=200)
    assert fetch_value(raw_conn, "SELECT pq_stop_workers()") == 2
    assert fetch_all(raw_conn, "SELECT name, stop FROM pq_worker ORDER BY name") == [
        ("w1", True),
        ("w2", True),
    ]


def test_a_name_registered_concurrently_from_another_host_raises_pq005(
    raw_conn: connection, connect: Callable[..., connection]
) -> None:
    # The first registration is not committed yet when the second one starts: the second
    # must still see the name taken once the first commits, not take the row over.
    first = connect(autocommit=False)
    _register(first, "w1", hostname="host-a", pid=100)
    second = connect(options="-c statement_timeout=5000")
    errors: list[BaseException] = []

    def register_second() -> None:
        try:
            _register(second, "w1", hostname="host-b", pid=200)
        except BaseException as exc:  # checked in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=register_second)
    thread.start()
    thread.join(timeout=0.3)
    assert thread.is_alive(), "the second registration should wait for the first one"
    first.commit()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(errors) == 1, "the second registration of a live name succeeded"
    assert getattr(errors[0], "pgcode", None) == "PQ005", errors[0]
    assert _worker(raw_conn, "w1")["hostname"] == "host-a"


# Worker identity: a per-process token tells a reconnect from a restarted process.


def _register_token(conn: connection, name: str, token: str, *, pid: int = 1, **kw: Any) -> None:
    execute(
        conn,
        "SELECT pq_register_worker(%s, NULL, %s, %s, %s, %s::bigint[], %s)",
        (name, kw.get("ttl", 60), kw.get("hostname", "box"), pid, kw.get("keep", []), token),
    )


def test_a_restarted_process_with_the_same_pid_fails_the_dead_ones_jobs(
    raw_conn: connection, connect: Callable[..., connection]
) -> None:
    _register_token(raw_conn, "w1", "first-process")
    job_id = _started(raw_conn, "w1", "emails")
    listener = connect()
    listen(listener)
    _register_token(raw_conn, "w1", "second-process")  # same host, pid 1: a new container
    job = get_job(raw_conn, job_id)
    assert (job["status"], job["queue"], job["origin"]) == ("failed", "failed", "emails")
    assert job["exc_info"].startswith("AbandonedJob: worker w1 stopped")
    assert fetch_value(raw_conn, "SELECT token FROM pq_worker WHERE name = 'w1'") == (
        "second-process"
    )
    assert notifications(listener, count=1) == [(CHANNEL, "emails")]


def test_another_token_from_another_pid_or_host_is_still_pq005(raw_conn: connection) -> None:
    _register_token(raw_conn, "w1", "first-process")
    with raises_pq("PQ005", r"a live worker named w1 is already registered"):
        _register_token(raw_conn, "w1", "other", pid=2)
    with raises_pq("PQ005", r"a live worker named w1 is already registered"):
        _register_token(raw_conn, "w1", "other", hostname="elsewhere")


def test_the_same_token_is_a_reconnect_that_puts_back_unreceived_jobs(raw_conn: connection) -> None:
    _register_token(raw_conn, "w1", "me")
    kept, unreceived = _started(raw_conn, "w1"), _started(raw_conn, "w1")
    _register_token(raw_conn, "w1", "me", pid=7, keep=[kept])  # pid from another namespace
    assert get_job(raw_conn, kept)["status"] == "started"
    assert get_job(raw_conn, unreceived)["status"] == "queued"


def test_an_outage_longer_than_the_ttl_keeps_the_kept_jobs(raw_conn: connection) -> None:
    _register_token(raw_conn, "w1", "me")
    kept = _started(raw_conn, "w1")
    _expire(raw_conn, "w1")  # nobody reaped it yet
    _register_token(raw_conn, "w1", "me", keep=[kept])
    assert get_job(raw_conn, kept)["status"] == "started"
    assert fetch_value(raw_conn, "SELECT pq_finish(%s, 'w1', '1')", (kept,)) is True


def test_reaping_notifies_the_queue_of_each_abandoned_job(
    raw_conn: connection, connect: Callable[..., connection]
) -> None:
    execute(raw_conn, """SELECT pq_create_queue('one-by-one', '{"serial": true}')""")
    _register(raw_conn, "dead")
    first = _started(raw_conn, "dead", "one-by-one")
    second = enqueue(raw_conn, "one-by-one")
    _started(raw_conn, "dead", "emails")
    _register(raw_conn, "alive", pid=200)
    listener = connect()
    listen(listener)
    _expire(raw_conn, "dead")
    assert fetch_value(raw_conn, "SELECT pq_reap_workers()") == 2
    expected = [(CHANNEL, "emails"), (CHANNEL, "one-by-one")]
    assert sorted(notifications(listener, count=2)) == expected
    assert get_job(raw_conn, first)["status"] == "failed"
    assert dequeue(raw_conn, ["one-by-one"], "alive")["id"] == second


def test_every_call_into_sql_raises_pq_exceptions() -> None:
    import inspect

    from pq import sql as pq_sql

    calls = [
        func
        for name, func in vars(pq_sql).items()
        if inspect.isfunction(func)
        and func.__module__ == "pq.sql"
        and not name.startswith("_")
        and name != "translate_errors"
    ]
    assert len(calls) > 20
    unwrapped = [func.__name__ for func in calls if not hasattr(func, "__wrapped__")]
    assert unwrapped == [], "pq.sql functions not under translate_errors: add @_translated"
