"""Serial queues: does claiming from a serial queue cost more with 100,000 jobs waiting than 10?

A claim on a serial queue locks the queue's row, checks that none of its jobs is started
(pq_job_started_queue) and takes its oldest queued job (pq_job_queued): none of these steps
reads the waiting jobs. The figures are the mean time of one claim and finish
(``pq_dequeue`` naming the queue, then ``pq_finish``) with 10 and with 100,000 jobs waiting,
and of the same with NULL queue names (a worker on all queues). A job is enqueued after each
round, outside the timing, so the backlog stays the same.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg2

from bench.context import Context
from bench.figures import Figure

SECTION = "serial"
WORKER = "bench-serial"
QUEUE = "bench-serial"
FUNC = "pq.utils.test_job"
FEW = 10
MANY = 100_000
CHUNK = 10_000
ROUNDS = 500


def run(ctx: Context) -> None:
    conn = psycopg2.connect(ctx.dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT pq_register_worker(%s, NULL, 3600)", [WORKER])
            cursor.execute("""SELECT pq_create_queue(%s, '{"serial": true}')""", [QUEUE])
            measured: dict[tuple[int, str], float] = {}
            waiting = 0
            for backlog in (FEW, MANY):
                _fill(cursor, backlog - waiting)
                waiting = backlog
                for label, queues in (("naming the queue", [QUEUE]), ("all queues", None)):
                    milliseconds = _claim_finish_ms(cursor, queues, ROUNDS)
                    measured[backlog, label] = milliseconds
                    name = f"claim and finish, {label}, {backlog:,} waiting"
                    seconds = milliseconds * ROUNDS / 1000
                    note = f"mean of {ROUNDS} rounds"
                    ctx.add(
                        Figure(
                            SECTION, name, "time", milliseconds, "ms", seconds=seconds, note=note
                        )
                    )
            ctx.log(
                "serial: claim and finish "
                + "; ".join(
                    f"{label} {measured[FEW, label]:.2f} ms with {FEW}, "
                    f"{measured[MANY, label]:.2f} ms with {MANY:,}"
                    for label in ("naming the queue", "all queues")
                )
            )
            cursor.execute("SELECT pq_empty_queue(%s)", [QUEUE])
            cursor.execute("SELECT pq_unregister_worker(%s)", [WORKER])
            cursor.execute("DELETE FROM pq_queue WHERE name = %s", [QUEUE])
    finally:
        conn.close()


def _fill(cursor: Any, count: int) -> None:
    """Enqueue ``count`` jobs on the serial queue, in batches."""
    while count > 0:
        size = min(count, CHUNK)
        cursor.execute(
            "SELECT count(*) FROM pq_enqueue_many(%s, array_fill(%s::text, ARRAY[%s]),"
            " array_fill('[]'::jsonb, ARRAY[%s]), array_fill('{}'::jsonb, ARRAY[%s]), NULL, 0)",
            [QUEUE, FUNC, size, size, size],
        )
        count -= size
    cursor.execute("ANALYZE pq_job")


def _claim_finish_ms(cursor: Any, queues: list[str] | None, rounds: int) -> float:
    """Return the mean milliseconds of ``rounds`` claims of one job, each finished at once."""
    spent = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        cursor.execute("SELECT id FROM pq_dequeue(%s::text[], %s)", [queues, WORKER])
        row = cursor.fetchone()
        assert row is not None, "the serial queue handed out no job"
        cursor.execute("SELECT pq_finish(%s, %s, NULL, 0)", [row[0], WORKER])
        spent += time.perf_counter() - start
        cursor.execute("SELECT pq_enqueue(%s, %s, result_ttl => 0)", [QUEUE, FUNC])
    return spent * 1000 / rounds
