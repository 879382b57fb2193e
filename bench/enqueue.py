"""Enqueue rate, no worker running: one job per call and per transaction, and in bulk."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg2

from bench.context import Context
from bench.figures import Figure
from pq import benchmark
from pq.utils import do_nothing

SECTION = "enqueue"
QUEUE = benchmark.QUEUE
BULK = 1000


def run(ctx: Context) -> None:
    single = 300 if ctx.quick else 3000
    bulk = 10_000 if ctx.quick else 100_000
    from pq.queue import Queue

    queue = Queue(QUEUE)
    _clear_pq()
    _timed(ctx, "pq q.enqueue (autocommit)", single, lambda: _single(queue, single))
    _clear_pq()
    _timed(ctx, f"pq q.enqueue_many ({BULK}/call)", bulk, lambda: _pq_bulk(queue, bulk))
    _clear_pq()
    _timed(ctx, "pq SQL pq_enqueue (psycopg2)", single, lambda: _sql_single(ctx.dsn, single))
    _clear_pq()
    if ctx.redis_url is not None:
        client = benchmark.redis_client(ctx.redis_url)
        import rq

        rq_queue = rq.Queue(QUEUE, connection=client)
        rq_queue.empty()
        _timed(ctx, "rq q.enqueue", single, lambda: _single(rq_queue, single))
        rq_queue.empty()
        _timed(ctx, f"rq q.enqueue_many ({BULK}/pipeline)", bulk, lambda: _rq_bulk(rq_queue, bulk))
        rq_queue.empty()
        client.close()


def _timed(ctx: Context, name: str, jobs: int, enqueue: Callable[[], None]) -> None:
    start = time.perf_counter()
    enqueue()
    seconds = time.perf_counter() - start
    figure = ctx.add(
        Figure(SECTION, name, "rate", jobs / seconds, "jobs/s", jobs=jobs, seconds=seconds)
    )
    ctx.log(f"enqueue: {name}: {jobs} jobs in {seconds:.2f} s = {figure.value:,.0f} jobs/s")


def _clear_pq() -> None:
    from pq.models import Job

    Job.objects.filter(origin=QUEUE).delete()


def _single(queue: Any, jobs: int) -> None:
    """Enqueue ``jobs`` jobs one call each, on a pq or an RQ queue (the same call on both)."""
    for _ in range(jobs):
        queue.enqueue(do_nothing, 0)


def _pq_bulk(queue: Any, jobs: int) -> None:
    for start in range(0, jobs, BULK):
        count = min(BULK, jobs - start)
        queue.enqueue_many([(do_nothing, (0,))] * count)


def _sql_single(dsn: str, jobs: int) -> None:
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            for _ in range(jobs):
                cursor.execute(
                    "SELECT pq_enqueue(%s, %s, %s::jsonb)", [QUEUE, "pq.utils.do_nothing", "[0]"]
                )
                cursor.fetchone()
    finally:
        conn.close()


def _rq_bulk(queue: Any, jobs: int) -> None:
    import rq

    for start in range(0, jobs, BULK):
        count = min(BULK, jobs - start)
        data = [rq.Queue.prepare_data(do_nothing, (0,))] * count
        queue.enqueue_many(data)
