"""The rules of a pq_job row (its one CHECK constraint, pq_job_valid, calling _pq_job_valid):
a row written straight into the table that breaks one is refused with check_violation naming
the rule; rows that keep them, NULLs included, are stored."""

from __future__ import annotations

import psycopg2
import psycopg2.errors
import pytest
from psycopg2.extensions import connection

from tests.sql.helpers import enqueue, execute, fetch_all, fetch_value

# (what the UPDATE sets, what the error says)
BROKEN_RULES = [
    ("status = 'running'", "status 'running' is not one of queued, scheduled, deferred"),
    ("status = 'scheduled', scheduled_for = NULL", "a scheduled job needs scheduled_for"),
    ("func = ''", "func is empty"),
    ("args = '{}'", "args must be a JSON array, not object"),
    ("kwargs = '[]'", "kwargs must be a JSON object, not array"),
    ("errors = '\"oops\"'", "errors must be a JSON array, not string"),
    ("timeout = 0", "timeout must be a positive number of seconds, not 0"),
    ("result_ttl = -2", "result_ttl must be -1 (kept forever) or more, not -2"),
    ("repeat = -2", "repeat must be -1 (forever) or more, not -2"),
    (
        "cron = '* * * * *', repeat_interval = interval '1 minute'",
        "a job repeats by cron or by repeat_interval, not both",
    ),
    ("priority = 101", "priority must be from -100 to 100, not 101"),
    ("priority = -101", "priority must be from -100 to 100, not -101"),
    ("max_retries = -1", "max_retries must be 0 or more, not -1"),
    ("retry_intervals = '{10,-1}'", "retry_intervals must be seconds, 0 or more, not {10,-1}"),
]


@pytest.mark.parametrize(("assignment", "message"), BROKEN_RULES)
def test_an_update_breaking_a_rule_is_refused_naming_it(
    raw_conn: connection, assignment: str, message: str
) -> None:
    job_id = enqueue(raw_conn)
    with pytest.raises(psycopg2.errors.CheckViolation) as raised:
        execute(raw_conn, f"UPDATE pq_job SET {assignment} WHERE id = %s", [job_id])
    assert message in str(raised.value)
    assert 'violates check constraint "pq_job_valid"' in str(raised.value)
    assert raised.value.diag.constraint_name == "pq_job_valid"
    assert raised.value.diag.table_name == "pq_job"
    assert fetch_value(raw_conn, "SELECT status FROM pq_job WHERE id = %s", [job_id]) == "queued"


def test_an_insert_breaking_a_rule_is_refused(raw_conn: connection) -> None:
    with pytest.raises(psycopg2.errors.CheckViolation, match="args must be a JSON array"):
        execute(
            raw_conn,
            "INSERT INTO pq_job (queue, origin, func, args) VALUES ('q', 'q', 'm.f', '1')",
        )
    assert fetch_all(raw_conn, "SELECT id FROM pq_job WHERE queue = 'q'") == []


def test_rows_keeping_the_rules_are_stored_nulls_and_limits_included(raw_conn: connection) -> None:
    job_id = enqueue(raw_conn)
    for assignment in [
        "timeout = NULL, result_ttl = NULL, retry_intervals = NULL, cron = NULL",
        "timeout = 1, result_ttl = -1, repeat = -1, priority = -100, max_retries = 0",
        "priority = 100, retry_intervals = '{0,10}', cron = '* * * * *', repeat_interval = NULL",
        "status = 'scheduled', scheduled_for = now(), args = '[1]', kwargs = '{\"a\": 1}'",
        "status = 'failed', scheduled_for = NULL, errors = '[{\"attempt\": 1}]'",
    ]:
        execute(raw_conn, f"UPDATE pq_job SET {assignment} WHERE id = %s", [job_id])
    assert fetch_value(raw_conn, "SELECT status FROM pq_job WHERE id = %s", [job_id]) == "failed"


def test_pq_job_has_one_check_constraint(raw_conn: connection) -> None:
    checks = fetch_all(
        raw_conn,
        "SELECT conname FROM pg_constraint WHERE conrelid = 'pq_job'::regclass AND contype = 'c'",
    )
    assert checks == [("pq_job_valid",)]
