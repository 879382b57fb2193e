"""A big queue: does dequeueing slow down with 1,000,000 jobs waiting, and does pq_job bloat?

Two non-forking batch workers (``Worker(fork=False, batch=100)``) measure the claim rate
(1) in rounds of 1,000 queued jobs (enqueued in one statement while the workers are idle,
timed from its commit until the oldest waiting job is 900 ids on), and (2) over the first
20,000 jobs of 1,000,000 enqueued in bulk (timed from the workers' start until the oldest
waiting job is 20,000 ids on). The workers then process all the jobs (``result_ttl=0``:
each row is deleted when its job ends). Two more millions are then enqueued and processed
the same way, to see whether the table keeps growing. The size of pq_job (heap and indexes)
is read at the start (after a VACUUM), once the jobs are queued, at its largest while they
are processed, at the end of each million, and after a plain VACUUM.
"""

from __future__ import annotations

import time
from typing import Any

from django.db import connection

from bench.context import Context
from bench.figures import Figure
from pq import benchmark

SECTION = "big queue"
QUEUE = "pqbig"
WORKERS = 2
BATCH = 100
ROUND = 1000
ROUND_TIMED = 900
CHUNK = 10_000
MODE = f"pq simple batch={BATCH}, {WORKERS} workers"
MiB = 2**20
CYCLES = ("1st", "2nd", "3rd")

Sizes = tuple[int, int, int]  # pq_job's total, heap (main fork) and indexes size in bytes


def run(ctx: Context) -> None:
    from pq.queue import Queue

    big = 100_000 if ctx.quick else 1_000_000
    first = 5_000 if ctx.quick else 20_000
    rounds = 3 if ctx.quick else 10
    queue = Queue(QUEUE)
    _execute("DELETE FROM pq_job WHERE origin = %s", [QUEUE])
    _execute("VACUUM pq_job")
    sizes: dict[str, Sizes] = {"start (after VACUUM)": _sizes()}

    small_seconds = _small_rounds(ctx, queue, rounds)
    small_rate = rounds * ROUND_TIMED / small_seconds
    name = f"claim rate, {ROUND:,} queued (first {ROUND_TIMED} of each round)"
    _add(ctx, name, small_rate, "jobs/s", rounds * ROUND_TIMED, small_seconds)
    ctx.log(f"big queue: {rounds} rounds of {ROUND} queued jobs: {small_rate:,.0f} jobs/s")

    for cycle in CYCLES:
        label = f"{cycle} {big:,}"
        seconds = _enqueue(queue, big)
        _add(ctx, f"{label}: bulk enqueue ({CHUNK:,}/call)", big / seconds, "jobs/s", big, seconds)
        ctx.log(f"big queue: {label}: enqueued in {seconds:.1f} s")
        sizes[f"{label} queued"] = _sizes()
        first_rate, seconds, largest = _drain(ctx, big, first)
        name = f"{label}: claim rate, first {first:,}"
        _add(ctx, name, first_rate, "jobs/s", first)
        _add(ctx, f"{label}: all processed", big / seconds, "jobs/s", big, seconds)
        if cycle == "1st":
            ratio = 100 * first_rate / small_rate
            _add(ctx, f"claim rate at {big:,} / at {ROUND:,} queued", ratio, "%")
        sizes[f"{label}: largest while processing"] = largest
        sizes[f"{label}: all processed"] = _sizes()
        _execute("VACUUM pq_job")
        sizes[f"{label}: after a plain VACUUM"] = _sizes()
    for when, (total, heap, indexes) in sizes.items():
        note = f"heap {heap / MiB:.1f} MiB, indexes {indexes / MiB:.1f} MiB"
        _add(ctx, f"pq_job size: {when}", total / MiB, "MiB", note=note)
        for metric, value in (("heap", heap), ("indexes", indexes)):
            ctx.add(Figure(SECTION, f"pq_job size: {when}", metric, value / MiB, "MiB", WORKERS))
        ctx.log(f"big queue: pq_job {when}: {total / MiB:.1f} MiB ({note})")


def _add(
    ctx: Context,
    name: str,
    value: float,
    unit: str,
    jobs: int | None = None,
    seconds: float | None = None,
    note: str = "",
) -> None:
    metric = "size" if unit == "MiB" else "rate" if unit == "jobs/s" else "ratio"
    ctx.add(Figure(SECTION, name, metric, value, unit, WORKERS, 0, jobs, seconds, note or MODE))


def _enqueue(queue: Any, jobs: int) -> float:
    start = time.perf_counter()
    for offset in range(0, jobs, CHUNK):
        benchmark.enqueue_jobs(queue, min(CHUNK, jobs - offset))
    return time.perf_counter() - start


def _small_rounds(ctx: Context, queue: Any, rounds: int) -> float:
    """Time the claiming of the first ROUND_TIMED jobs of ``rounds`` rounds of ROUND."""
    seconds = 0.0
    with ctx.pq_workers()(WORKERS, fork=False, batch=BATCH, queue=QUEUE) as running:
        for _ in range(rounds):
            benchmark.enqueue_jobs(queue, ROUND)
            start = time.perf_counter()
            first_id = _oldest_queued()
            while True:
                oldest = _oldest_queued()
                if oldest is None or first_id is None or oldest >= first_id + ROUND_TIMED:
                    break
                time.sleep(0.002)
            seconds += time.perf_counter() - start
            while _count() > 0:  # the next round starts with idle workers
                running.check_alive()
                time.sleep(0.01)
    return seconds


def _drain(ctx: Context, big: int, first: int) -> tuple[float, float, Sizes]:
    """Process every job; return the claim rate over the first ``first``, the seconds for all
    of them and pq_job's largest size meanwhile."""
    largest = _sizes()
    with ctx.pq_workers()(WORKERS, fork=False, batch=BATCH, queue=QUEUE) as running:
        start = time.perf_counter()
        first_id = _oldest_queued()  # the workers may have begun while the others registered
        assert first_id is not None
        while True:
            oldest = _oldest_queued()
            if oldest is None or oldest >= first_id + first:
                break
            running.check_alive()
            time.sleep(0.02)
        first_rate = first / (time.perf_counter() - start)
        ctx.log(f"big queue: first {first:,} of {big:,}: {first_rate:,.0f} jobs/s; draining")
        report = time.perf_counter() + 15
        while _oldest_queued() is not None or _count() > 0:
            running.check_alive()
            size = _sizes()
            largest = max(largest, size)
            if time.perf_counter() > report:
                report = time.perf_counter() + 15
                ctx.log(f"big queue: draining, pq_job {size[0] / MiB:.0f} MiB")
            time.sleep(1.0)
        seconds = time.perf_counter() - start
    return first_rate, seconds, largest


def _execute(query: str, params: list[Any] | None = None) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(query, params or [])
        return cursor.fetchone() if cursor.description else None


def _count() -> int:
    return int(_execute("SELECT count(*) FROM pq_job WHERE queue = %s", [QUEUE])[0])


def _oldest_queued() -> int | None:
    """The id of the next job to claim (all have priority 0), read from pq_job_queued's head:
    min(id) cannot use that index's (queue, priority DESC, id) order and reads every queued
    job of the queue, on each poll, taking the CPU the workers are being timed on."""
    query = (
        "SELECT id FROM pq_job WHERE queue = %s AND status = 'queued'"
        " ORDER BY priority DESC, id LIMIT 1"
    )
    row = _execute(query, [QUEUE])
    return row[0] if row else None


def _sizes() -> Sizes:
    query = (
        "SELECT pg_total_relation_size('pq_job'), pg_relation_size('pq_job'),"
        " pg_indexes_size('pq_job')"
    )
    total, heap, indexes = _execute(query)
    return int(total), int(heap), int(indexes)
