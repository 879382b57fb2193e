"""Flows in SQL: pq_flow_create, pq_flow_enqueue, pq_flow_start and the chaining trigger."""

from __future__ import annotations

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

CLAIMING_WORKERS = ("w1", "w2")


def create(conn: connection, queue: str = "default", name: str | None = None) -> int:
    return fetch_value(conn, "SELECT pq_flow_create(%s, %s)", (queue, name))


def add(conn: connection, flow_id: int, **options: Any) -> int:
    return fetch_value(
        conn,
        "SELECT pq_flow_enqueue(%s, %s, result_ttl => %s, scheduled_for => %s)",
        (flow_id, FUNC, options.get("result_ttl"), options.get("scheduled_for")),
    )


def start(conn: connection, flow_id: int) -> int:
    return fetch_value(conn, "SELECT pq_flow_start(%s)", (flow_id,))


def flow(conn: connection, flow_id: int) -> dict[str, Any]:
    row = fetch_all(
        conn,
        "SELECT status, jobs, ended_at, expires_at FROM pq_flow WHERE id = %s",
        (flow_id,),
    )
    assert len(row) == 1, f"no flow {flow_id}"
    status, jobs, ended_at, expires_at = row[0]
    return {"status": status, "jobs": jobs, "ended_at": ended_at, "expires_at": expires_at}


def statuses(conn: connection, job_ids: list[int]) -> list[str | None]:
    found = dict(fetch_all(conn, "SELECT id, status FROM pq_job WHERE id = ANY(%s)", (job_ids,)))
    return [found.get(job_id) for job_id in job_ids]


def run_next(conn: connection, worker: str = "w1", result_ttl: int = 500) -> int:
    """Claim the next job as ``worker`` and finish it; return its id."""
    job = dequeue(conn, ["default"], worker)
    assert job is not None, "no job was ready"
    assert fetch_value(conn, "SELECT pq_finish(%s, %s, NULL, %s)", (job["id"], worker, result_ttl))
    return job["id"]


def test_a_flow_runs_nothing_before_it_starts_then_one_job_after_the_other(
    raw_conn: connection,
) -> None:
    flow_id = create(raw_conn, name="signup")
    jobs = [add(raw_conn, flow_id) for _ in range(3)]
    assert flow(raw_conn, flow_id)["status"] == "deferred"
    assert flow(raw_conn, flow_id)["jobs"] == jobs
    assert statuses(raw_conn, jobs) == ["deferred"] * 3
    assert dequeue(raw_conn, ["default"]) is None

    assert start(raw_conn, flow_id) == 3
    assert flow(raw_conn, flow_id)["status"] == "started"
    assert statuses(raw_conn, jobs) == ["queued", "deferred", "deferred"]
    assert dequeue(raw_conn, ["default"], "w2")["id"] == jobs[0]
    assert dequeue(raw_conn, ["default"]) is None, "the second job ran before the first ended"
    assert fetch_value(raw_conn, "SELECT pq_finish(%s, 'w2')", (jobs[0],))
    assert statuses(raw_conn, jobs) == ["finished", "queued", "deferred"]

    assert run_next(raw_conn) == jobs[1]
    assert run_next(raw_conn, result_ttl=3600) == jobs[2]
    done = flow(raw_conn, flow_id)
    assert done["status"] == "finished"
    assert done["ended_at"] is not None
    assert done["expires_at"] == get_job(raw_conn, jobs[2])["expires_at"]


def test_jobs_of_a_flow_depend_on_the_one_before(raw_conn: connection) -> None:
    flow_id = create(raw_conn)
    jobs = [add(raw_conn, flow_id) for _ in range(3)]
    depends = [get_job(raw_conn, job_id)["depends_on"] for job_id in jobs]
    assert depends == [None, jobs[0], jobs[1]]
    assert {get_job(raw_conn, job_id)["flow_id"] for job_id in jobs} == {flow_id}


def test_a_failed_job_fails_the_flow_holds_the_rest_and_requeue_resumes_it(
    raw_conn: connection,
) -> None:
    flow_id = create(raw_conn)
    jobs = [add(raw_conn, flow_id) for _ in range(3)]
    start(raw_conn, flow_id)
    run_next(raw_conn)
    second = dequeue(raw_conn, ["default"])
    assert fetch_value(raw_conn, "SELECT pq_fail(%s, 'w1', 'Boom')", (second["id"],))

    assert flow(raw_conn, flow_id)["status"] == "failed"
    assert statuses(raw_conn, jobs) == ["finished", "failed", "deferred"]
    assert dequeue(raw_conn, ["default"]) is None

    execute(raw_conn, "SELECT pq_requeue(%s)", (jobs[1],))
    assert flow(raw_conn, flow_id)["status"] == "started"
    assert flow(raw_conn, flow_id)["ended_at"] is None
    assert run_next(raw_conn) == jobs[1]
    assert run_next(raw_conn) == jobs[2]
    assert flow(raw_conn, flow_id)["status"] == "finished"


def test_a_job_abandoned_by_a_dead_worker_fails_the_flow(raw_conn: connection) -> None:
    execute(raw_conn, "SELECT pq_register_worker('dying', NULL, 1)")
    flow_id = create(raw_conn)
    jobs = [add(raw_conn, flow_id) for _ in range(2)]
    start(raw_conn, flow_id)
    assert dequeue(raw_conn, ["default"], "dying")["id"] == jobs[0]
    execute(
        raw_conn, "UPDATE pq_worker SET expires_at = now() - interval '1 s' WHERE name = 'dying'"
    )

    assert fetch_value(raw_conn, "SELECT pq_reap_workers()") == 1
    assert flow(raw_conn, flow_id)["status"] == "failed"
    assert statuses(raw_conn, jobs) == ["failed", "deferred"]


def test_a_scheduled_job_of_a_flow_waits_for_its_time_after_its_turn(
    raw_conn: connection,
) -> None:
    later = fetch_value(raw_conn, "SELECT now() + interval '1 hour'")
    earlier = fetch_value(raw_conn, "SELECT now() - interval '1 hour'")
    flow_id = create(raw_conn)
    first = add(raw_conn, flow_id, scheduled_for=earlier)
    second = add(raw_conn, flow_id, scheduled_for=later)
    start(raw_conn, flow_id)
    assert statuses(raw_conn, [first, second]) == ["queued", "deferred"]

    listen(raw_conn)
    run_next(raw_conn)
    job = get_job(raw_conn, second)
    assert job["status"] == "scheduled"
    assert job["scheduled_for"] == later
    # A worker sleeping until its next due job must learn of this one.
    assert (CHANNEL, "default") in notifications(raw_conn, timeout=0.5)
    assert dequeue(raw_conn, ["default"]) is None


def test_a_flow_on_a_serial_queue_keeps_the_queue_serial(raw_conn: connection) -> None:
    other = fetch_value(raw_conn, "SELECT pq_enqueue('serial', %s)", (FUNC,))
    flow_id = create(raw_conn, "serial")
    jobs = [add(raw_conn, flow_id) for _ in range(2)]
    start(raw_conn, flow_id)
    assert dequeue(raw_conn, ["serial"])["id"] == other
    assert dequeue(raw_conn, ["serial"], "w2") is None, "a flow job ran beside a serial job"
    assert fetch_value(raw_conn, "SELECT pq_finish(%s, 'w1')", (other,))
    assert dequeue(raw_conn, ["serial"], "w2")["id"] == jobs[0]


def test_a_flow_expires_with_its_final_job_never_while_a_job_is_kept(
    raw_conn: connection,
) -> None:
    flow_id = create(raw_conn)
    kept = add(raw_conn, flow_id, result_ttl=-1)
    final = add(raw_conn, flow_id, result_ttl=0)
    start(raw_conn, flow_id)
    run_next(raw_conn)
    run_next(raw_conn)  # result_ttl 0: expires at once, but through an update that chains
    assert flow(raw_conn, flow_id)["status"] == "finished"

    fetch_value(raw_conn, "SELECT pq_expire_jobs()")
    assert get_job(raw_conn, final) is None
    assert get_job(raw_conn, kept)["status"] == "finished"
    assert flow(raw_conn, flow_id)["status"] == "finished", "expired while a job was kept"

    execute(raw_conn, "DELETE FROM pq_job WHERE id = %s", (kept,))
    fetch_value(raw_conn, "SELECT pq_expire_jobs()")
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_flow WHERE id = %s", (flow_id,)) == 0


def test_a_flow_kept_forever_when_its_final_job_is(raw_conn: connection) -> None:
    flow_id = create(raw_conn)
    add(raw_conn, flow_id, result_ttl=-1)
    start(raw_conn, flow_id)
    run_next(raw_conn)
    assert flow(raw_conn, flow_id)["expires_at"] is None
    fetch_value(raw_conn, "SELECT pq_expire_jobs()")
    assert flow(raw_conn, flow_id)["status"] == "finished"


def test_an_empty_flow_finishes_at_once(raw_conn: connection) -> None:
    flow_id = create(raw_conn)
    assert start(raw_conn, flow_id) == 0
    assert flow(raw_conn, flow_id)["status"] == "finished"


def test_a_flow_rolled_back_leaves_nothing(raw_conn: connection) -> None:
    raw_conn.autocommit = False
    flow_id = create(raw_conn)
    add(raw_conn, flow_id)
    raw_conn.rollback()
    raw_conn.autocommit = True
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_flow") == 0
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_job") == 0


def test_bad_flow_calls_say_what_is_wrong(raw_conn: connection) -> None:
    with raises_pq(
        "PQ001", r"^pq_flow_create: a flow name must be 1 to 100 characters long, got 101$"
    ):
        create(raw_conn, name="x" * 101)
    with raises_pq(
        "PQ001", r"^pq_flow_create: a flow name must be 1 to 100 characters long, got 0$"
    ):
        create(raw_conn, name="")
    with raises_pq("PQ001", r"^pq_flow_create: cannot enqueue on the failed queue$"):
        create(raw_conn, "failed")
    with raises_pq("PQ007", r"^pq_flow_enqueue: no flow with id 424242$"):
        add(raw_conn, 424242)
    with raises_pq("PQ007", r"^pq_flow_start: no flow with id 424242$"):
        start(raw_conn, 424242)
    flow_id = create(raw_conn)
    with raises_pq("PQ001", r"^pq_flow_enqueue: func 'nodots' is not a dotted path"):
        fetch_value(raw_conn, "SELECT pq_flow_enqueue(%s, 'nodots')", (flow_id,))
    add(raw_conn, flow_id)
    start(raw_conn, flow_id)
    with raises_pq("PQ004", r"^pq_flow_enqueue: flow \d+ is started: jobs are added"):
        add(raw_conn, flow_id)
    with raises_pq("PQ004", r"^pq_flow_start: flow \d+ is started"):
        start(raw_conn, flow_id)


def test_a_started_flow_job_is_in_the_flow_until_the_last_one_ends(
    raw_conn: connection,
) -> None:
    flow_id = create(raw_conn)
    jobs = [add(raw_conn, flow_id) for _ in range(2)]
    start(raw_conn, flow_id)
    job = dequeue(raw_conn, ["default"])
    assert job["flow_id"] == flow_id
    # A worker stopping puts its claimed job back: the flow goes on as before.
    assert fetch_value(raw_conn, "SELECT pq_release(%s, 'w1')", ([jobs[0]],)) == 1
    assert flow(raw_conn, flow_id)["status"] == "started"
    assert statuses(raw_conn, jobs) == ["queued", "deferred"]
