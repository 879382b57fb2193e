"""What a role that may only enqueue can and cannot do (sql/security.sql)."""

from __future__ import annotations

from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql
from psycopg2.extensions import connection

from pq import sql as pq_sql
from tests.sql.helpers import (
    FUNC,
    Role,
    enqueue,
    execute,
    fetch_all,
    fetch_value,
    get_job,
    raises_pq,
)
from tests.workerprocs import WorkerProcesses, wait_until

ENQUEUE_SIGNATURE = (
    "pq_enqueue(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea,"
    " integer, integer, integer[])"
)
INSUFFICIENT_PRIVILEGE = "42501"


@pytest.fixture
def grant_enqueue(raw_conn: connection, role: Role) -> Role:
    """Grant the role EXECUTE on pq_enqueue, and nothing else."""
    execute(
        raw_conn,
        sql.SQL(f"GRANT EXECUTE ON FUNCTION {ENQUEUE_SIGNATURE} TO {{}}").format(
            sql.Identifier(role.name)
        ),
    )
    return role


def test_granted_role_can_enqueue_without_table_rights(
    raw_conn: connection, grant_enqueue: Role
) -> None:
    app = grant_enqueue.connect()
    assert fetch_value(app, "SELECT current_user") == grant_enqueue.name
    job_id = enqueue(app, "emails", args=[1])
    job = get_job(raw_conn, job_id)
    assert job["queue"] == "emails"
    assert job["func"] == FUNC
    assert job["args"] == [1]


def test_granted_role_cannot_read_the_jobs(grant_enqueue: Role) -> None:
    app = grant_enqueue.connect()
    enqueue(app, "emails")
    with raises_pq(INSUFFICIENT_PRIVILEGE, r"^permission denied for table pq_job$"):
        fetch_all(app, "SELECT * FROM pq_job")
    with raises_pq(INSUFFICIENT_PRIVILEGE, r"^permission denied for table pq_job$"):
        execute(app, "DELETE FROM pq_job")


def test_granted_role_cannot_call_pq_enqueue_job(grant_enqueue: Role) -> None:
    app = grant_enqueue.connect()
    with raises_pq(INSUFFICIENT_PRIVILEGE, r"^permission denied for function _pq_enqueue_job$"):
        fetch_all(app, "SELECT _pq_enqueue_job('emails', %s)", (FUNC,))


def test_role_without_the_grant_cannot_enqueue(raw_conn: connection, role: Role) -> None:
    app = role.connect()
    with raises_pq(INSUFFICIENT_PRIVILEGE, r"^permission denied for function pq_enqueue$"):
        enqueue(app, "emails")
    assert fetch_value(raw_conn, "SELECT count(*) FROM pq_job") == 0


def test_execute_on_pq_enqueue_is_not_granted_to_public(raw_conn: connection) -> None:
    granted = fetch_value(
        raw_conn,
        f"SELECT has_function_privilege('public', '{ENQUEUE_SIGNATURE}', 'EXECUTE')",
    )
    assert granted is False


def test_temporary_pq_job_table_does_not_capture_the_enqueue(
    raw_conn: connection, grant_enqueue: Role
) -> None:
    app = grant_enqueue.connect()
    # Same columns as pq_job, so that an unpinned search_path would insert here.
    columns = fetch_all(
        raw_conn,
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 'pq_job'::regclass AND attnum > 0 AND NOT attisdropped"
        " ORDER BY attnum",
    )
    definition = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(type_name))
        for name, type_name in columns
    )
    execute(app, sql.SQL("CREATE TEMPORARY TABLE pq_job ({})").format(definition))
    execute(app, "CREATE TEMPORARY SEQUENCE pq_job_temp_id")
    execute(app, "ALTER TABLE pg_temp.pq_job ALTER id SET DEFAULT nextval('pq_job_temp_id')")

    job_id = enqueue(app, "emails")

    assert fetch_value(app, "SELECT count(*) FROM pg_temp.pq_job") == 0
    job = get_job(raw_conn, job_id)
    assert job is not None, "the job went into the caller's temporary pq_job table"
    assert job["queue"] == "emails"


def test_security_definer_functions_pin_search_path(raw_conn: connection) -> None:
    rows = fetch_all(
        raw_conn,
        "SELECT proname, proconfig FROM pg_proc"
        " WHERE pronamespace = current_schema()::regnamespace AND prosecdef"
        " AND (proname LIKE 'pq\\_%' OR proname LIKE '\\_pq\\_%') ORDER BY proname",
    )
    schema = fetch_value(raw_conn, "SELECT current_schema()")
    assert [name for name, _ in rows] == [
        "_pq_enqueue_job",
        "_pq_flow_enqueue_job",
        "_pq_schedule_job",
        "pq_enqueue",
        "pq_enqueue_many",
        "pq_flow_create",
        "pq_flow_enqueue",
        "pq_flow_start",
        "pq_schedule",
        "pq_schedule_cron",
        "pq_unschedule",
    ]
    for name, config in rows:
        assert config == [f"search_path={schema}, pg_temp"], name


# The grants sql/security.sql documents for each kind of client, on real roles.

ENQUEUE_JOB_SIGNATURE = (
    "_pq_enqueue_job(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea,"
    " integer, integer, integer[])"
)
ENQUEUE_MANY_SIGNATURE = (
    "pq_enqueue_many(text, text[], jsonb[], jsonb[], integer, integer, integer, integer, integer[])"
)
GRANTS = {
    "sql": [f"GRANT EXECUTE ON FUNCTION {ENQUEUE_SIGNATURE}, {ENQUEUE_MANY_SIGNATURE} TO {{}}"],
    "web": [
        f"GRANT EXECUTE ON FUNCTION {ENQUEUE_JOB_SIGNATURE} TO {{}}",
        "GRANT SELECT ON pq_job TO {}",
    ],
    "worker": [
        "GRANT SELECT, INSERT, UPDATE, DELETE ON pq_job, pq_queue, pq_worker, pq_flow TO {}",
        f"GRANT EXECUTE ON FUNCTION {ENQUEUE_JOB_SIGNATURE} TO {{}}",
    ],
    "reader": ["GRANT SELECT ON pq_job, pq_queue, pq_worker, pq_flow TO {}"],
    "flow": [
        "GRANT EXECUTE ON FUNCTION pq_flow_create(text, text),"
        " pq_flow_enqueue(bigint, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea,"
        " integer, integer, integer[]),"
        " pq_flow_start(bigint) TO {}"
    ],
}


def _grant(raw_conn: connection, role: Role, kind: str) -> connection:
    for statement in GRANTS[kind]:
        execute(raw_conn, sql.SQL(statement).format(sql.Identifier(role.name)))
    return role.connect()


def test_sql_enqueuer_grants(raw_conn: connection, role: Role) -> None:
    app = _grant(raw_conn, role, "sql")
    enqueue(app, "emails")
    ids = fetch_all(app, "SELECT pq_enqueue_many('emails', ARRAY[%s, %s])", (FUNC, FUNC))
    assert len(ids) == 2
    with raises_pq(INSUFFICIENT_PRIVILEGE, r"^permission denied for table pq_job$"):
        fetch_all(app, "SELECT * FROM pq_job")


def test_django_web_process_grants(raw_conn: connection, role: Role) -> None:
    app = _grant(raw_conn, role, "web")
    with app.cursor() as cursor:
        row = pq_sql.enqueue_job(cursor, "emails", FUNC, [1], {"to": "bob"}, description="mail")
    assert row["status"] == "queued"
    assert fetch_value(app, "SELECT kwargs FROM pq_job WHERE id = %s", (row["id"],)) == {
        "to": "bob"
    }
    with raises_pq(INSUFFICIENT_PRIVILEGE, r"^permission denied for table pq_job$"):
        execute(app, "DELETE FROM pq_job")


def test_worker_grants(raw_conn: connection, role: Role) -> None:
    first, second = enqueue(raw_conn, "emails"), enqueue(raw_conn, "emails")
    worker = _grant(raw_conn, role, "worker")
    execute(worker, "SELECT pq_register_worker('w1', NULL, 60, 'box', 1, '{}', 'token')")
    execute(worker, "SELECT pq_heartbeat('w1', 60)")
    assert fetch_value(worker, "SELECT id FROM pq_dequeue(NULL, 'w1')") == first
    claimed = fetch_all(
        worker,
        "SELECT id FROM pq_finish_dequeue(%s::bigint[], '{1}', 'w1', 60, '{emails}', 5)",
        ([first],),
    )
    assert claimed == [(second,)]
    assert fetch_value(worker, "SELECT pq_fail(%s, 'w1', 'boom')", (second,)) is True
    fetch_all(worker, "SELECT id FROM _pq_enqueue_job('emails', %s)", (FUNC,))
    for maintenance in ("pq_reap_workers", "pq_expire_jobs", "pq_remove_empty_queues"):
        fetch_value(worker, f"SELECT {maintenance}()")
    fetch_value(worker, "SELECT pq_next_due(NULL)")
    execute(worker, "SELECT pq_unregister_worker('w1')")


def test_flow_builder_grants(raw_conn: connection, role: Role) -> None:
    builder = _grant(raw_conn, role, "flow")
    flow_id = fetch_value(builder, "SELECT pq_flow_create('emails', 'signup')")
    first = fetch_value(builder, "SELECT pq_flow_enqueue(%s, %s)", (flow_id, FUNC))
    second = fetch_value(builder, "SELECT pq_flow_enqueue(%s, %s)", (flow_id, FUNC))
    assert fetch_value(builder, "SELECT pq_flow_start(%s)", (flow_id,)) == 2

    statuses = dict(fetch_all(raw_conn, "SELECT id, status FROM pq_job ORDER BY id"))
    assert statuses == {first: "queued", second: "deferred"}
    with raises_pq(INSUFFICIENT_PRIVILEGE, r"^permission denied for table pq_flow$"):
        fetch_all(builder, "SELECT * FROM pq_flow")
    with raises_pq(
        INSUFFICIENT_PRIVILEGE, r"^permission denied for function _pq_flow_enqueue_job$"
    ):
        fetch_all(builder, "SELECT * FROM _pq_flow_enqueue_job(%s, %s)", (flow_id, FUNC))


def test_admin_reader_grants(raw_conn: connection, role: Role) -> None:
    job_id = enqueue(raw_conn, "emails")
    reader = _grant(raw_conn, role, "reader")
    for table in ("pq_job", "pq_queue", "pq_worker", "pq_flow"):
        fetch_all(reader, f"SELECT * FROM {table}")
    assert fetch_value(reader, "SELECT queue FROM pq_job WHERE id = %s", (job_id,)) == "emails"
    with raises_pq(INSUFFICIENT_PRIVILEGE, r"^permission denied for function pq_enqueue$"):
        enqueue(reader, "emails")


def test_anyone_can_wake_the_workers_and_nothing_more(
    raw_conn: connection, role: Role, tmp_path: Path
) -> None:
    # PostgreSQL has no privilege for NOTIFY: a role with no rights at all can notify
    # pq_jobs. A wake-up costs an idle worker one empty claim; it runs nothing, and the
    # worker goes on serving real jobs.
    with WorkerProcesses(tmp_path) as workers:
        worker = workers.pqworker("--name=woken")
        worker.wait_for_log("*** Listening for work on all queues")
        stranger = role.connect()
        with stranger.cursor() as cursor:
            for payload in ("", "default", "failed", "no-such-queue") * 100:
                cursor.execute("SELECT pg_notify('pq_jobs', %s)", [payload])
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cursor.execute("SELECT pq_enqueue('default', %s)", [FUNC])
        assert fetch_value(raw_conn, "SELECT count(*) FROM pq_job") == 0
        job_id = enqueue(raw_conn, "default", FUNC)
        wait_until(lambda: get_job(raw_conn, job_id)["status"] == "finished", what="the job")
        assert worker.popen.poll() is None, worker.log()
