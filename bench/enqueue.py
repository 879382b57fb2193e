"""Enqueue rate, no worker running: one job per call and per transaction, and in bulk.

The one-job-per-call enqueuers (pq's q.enqueue, SQL pq_enqueue, RQ's q.enqueue) take turns in
``ROUNDS`` rounds and each figure is the median round: on a shared VM one pass swings by 30%.
"""

from __future__ import annotations

import statistics
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
ROUNDS = 5
WARM_UP = 50


def run(ctx: Context) -> None:
    single = 300 if ctx.quick else 3000
    bulk = 10_000 if ctx.quick else 100_000
    from pq.queue import Queue

    rq_queue = None
    if ctx.redis_url is not None:
        import rq

        rq_queue = rq.Queue(QUEUE, connection=benchmark.redis_client(ctx.redis_url))
    queue = Queue(QUEUE)
    conn = psycopg2.connect(ctx.dsn)
    try:
        conn.autocommit = True
        singles: dict[str, Callable[[int], None]] = {
            "pq q.enqueue (autocommit)": lambda jobs: _single(queue, jobs),
            "pq SQL pq_enqueue (psycopg2)": lambda jobs: _sql_single(conn, jobs),
        }
        if rq_queue is not None:
            rq_queue.empty()
            singles["rq q.enqueue"] = lambda jobs: _single(rq_queue, jobs)
        _clear_pq()
        _in_turns(ctx, singles, single, 1 if ctx.quick else ROUNDS)
    finally:
        conn.close()
    _clear_pq()
    _timed(ctx, f"pq q.enqueue_many ({BULK}/call)", bulk, lambda: _pq_bulk(queue, bulk))
    _clear_pq()
    if rq_queue is not None:
        rq_queue.empty()
        _timed(ctx, f"rq q.enqueue_many ({BULK}/pipeline)", bulk, lambda: _rq_bulk(rq_queue, bulk))
        rq_queue.empty()
        rq_queue.connection.close()


def _in_turns(
    ctx: Context, enqueuers: dict[str, Callable[[int], None]], jobs: int, rounds: int
) -> None:
    """Time each enqueuer over ``jobs`` jobs in ``rounds`` rounds, taking turns, after
    ``WARM_UP`` untimed jobs each; record each one's median round (host noise then falls on
    all of them alike)."""
    per_round = max(1, jobs // rounds)
    for enqueue in enqueuers.values():
        enqueue(WARM_UP)  # connections opened, plans cached, modules loaded: not timed
    rates: dict[str, list[float]] = {name: [] for name in enqueuers}
    seconds: dict[str, float] = dict.fromkeys(enqueuers, 0.0)
    for _ in range(rounds):
        for name, enqueue in enqueuers.items():
            start = time.perf_counter()
            enqueue(per_round)
            elapsed = time.perf_counter() - start
            rates[name].append(per_round / elapsed)
            seconds[name] += elapsed
    for name, values in rates.items():
        rate = statistics.median_low(values)
        note = ""
        if rounds > 1:
            listed = ", ".join(f"{value:,.0f}" for value in values)
            note = f"median of {rounds} rounds of {per_round}, in turns ({listed} jobs/s)"
        total = per_round * rounds
        ctx.add(
            Figure(
                SECTION, name, "rate", rate, "jobs/s", jobs=total, seconds=seconds[name], note=note
            )
        )
        ctx.log(f"enqueue: {name}: {total} jobs, median round {rate:,.0f} jobs/s")


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


def _sql_single(conn: Any, jobs: int) -> None:
    """Enqueue ``jobs`` jobs with ``SELECT pq_enqueue(...)`` on a raw autocommit connection."""
    with conn.cursor() as cursor:
        for _ in range(jobs):
            cursor.execute(
                "SELECT pq_enqueue(%s, %s, %s::jsonb)", [QUEUE, "pq.utils.do_nothing", "[0]"]
            )
            cursor.fetchone()


def _rq_bulk(queue: Any, jobs: int) -> None:
    import rq

    for start in range(0, jobs, BULK):
        count = min(BULK, jobs - start)
        data = [rq.Queue.prepare_data(do_nothing, (0,))] * count
        queue.enqueue_many(data)
