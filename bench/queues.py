"""Claims over all queues: does an empty claim cost more with 20,000 queue names than with 1?

A worker on all queues passes NULL queue names: one claim over pq_job's partial indexes,
whatever number of rows pq_queue holds. The figures are the mean time of an empty
``pq_dequeue_many(NULL, worker, 10)`` with 1 queue row and with 20,000, and, for contrast,
of a claim naming all 20,000 queues explicitly (a loop over the names, which is what a
worker on all queues did before).
"""

from __future__ import annotations

import time
from typing import Any

import psycopg2

from bench.context import Context
from bench.figures import Figure

SECTION = "queues"
WORKER = "bench-queues"
MANY = 20_000
CLAIMS = 200
EXPLICIT_CLAIMS = 3


def run(ctx: Context) -> None:
    conn = psycopg2.connect(ctx.dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT pq_register_worker(%s, NULL, 3600)", [WORKER])
            cursor.execute("SELECT pq_remove_empty_queues()")
            one = _claim_ms(cursor, None, CLAIMS)
            _add(ctx, "empty claim over all queues, 1 queue row", one, CLAIMS)
            cursor.execute(
                "INSERT INTO pq_queue (name) SELECT 'bench-q' || n FROM generate_series(1, %s) n",
                [MANY],
            )
            cursor.execute("ANALYZE pq_queue")
            many = _claim_ms(cursor, None, CLAIMS)
            _add(ctx, f"empty claim over all queues, {MANY:,} queue rows", many, CLAIMS)
            cursor.execute("SELECT array_agg(name ORDER BY name) FROM pq_queue")
            names = cursor.fetchone()[0]
            explicit = _claim_ms(cursor, names, EXPLICIT_CLAIMS)
            _add(ctx, f"empty claim naming all {len(names):,} queues", explicit, EXPLICIT_CLAIMS)
            ctx.log(
                f"queues: empty claim {one:.2f} ms with 1 queue, {many:.2f} ms with {MANY:,};"
                f" naming them all {explicit:,.0f} ms"
            )
            cursor.execute("SELECT pq_remove_empty_queues()")
            cursor.execute("SELECT pq_unregister_worker(%s)", [WORKER])
    finally:
        conn.close()


def _claim_ms(cursor: Any, queues: list[str] | None, count: int) -> float:
    """Return the mean milliseconds of ``count`` empty claims of up to 10 jobs."""
    cursor.execute("SELECT count(*) FROM pq_dequeue_many(%s::text[], %s, 10)", [queues, WORKER])
    start = time.perf_counter()
    for _ in range(count):
        cursor.execute("SELECT count(*) FROM pq_dequeue_many(%s::text[], %s, 10)", [queues, WORKER])
        assert cursor.fetchone()[0] == 0, "the claim found a job: the queues must be empty"
    return (time.perf_counter() - start) * 1000 / count


def _add(ctx: Context, name: str, milliseconds: float, claims: int) -> None:
    seconds = milliseconds * claims / 1000
    note = f"mean of {claims} claims"
    ctx.add(Figure(SECTION, name, "time", milliseconds, "ms", seconds=seconds, note=note))
