"""Throughput: django-pq and RQ workers side by side, through pq.benchmark's shared protocol."""

from __future__ import annotations

from collections.abc import Callable

from bench.context import Context
from bench.figures import Figure
from pq import benchmark

FORK0 = "fork, sleep 0"
SIMPLE0 = "non-forking, sleep 0"
FORK250 = "fork, sleep 250 ms"
SIMPLE_BATCH = 100


def run(ctx: Context) -> None:
    """Measure the matrix: forking at sleep 0, non-forking at sleep 0, forking at sleep 250."""
    quick = ctx.quick
    for workers in [1, 2] if quick else [1, 2, 4, 6]:
        jobs = 200 if quick else 1000
        _pq(ctx, FORK0, jobs, workers, 0, fork=True)
        _rq(ctx, FORK0, jobs, workers, 0, simple=False)
    for workers in [1, 2]:
        _pq(ctx, SIMPLE0, 2000 if quick else 20000, workers, 0, fork=False, batch=SIMPLE_BATCH)
        _pq(ctx, SIMPLE0, 500 if quick else 5000, workers, 0, fork=False)
        _rq(ctx, SIMPLE0, 300 if quick else 2000, workers, 0, simple=True)
    for workers in [1, 4] if quick else [1, 2, 4, 6, 10, 20]:
        jobs = workers * (4 if quick else 16)
        _pq(ctx, FORK250, jobs, workers, 250, fork=True)
        _rq(ctx, FORK250, jobs, workers, 250, simple=False)


def _pq(
    ctx: Context,
    section: str,
    jobs: int,
    workers: int,
    sleep_ms: float,
    *,
    fork: bool,
    batch: int = 1,
) -> None:
    label = "pq fork" if fork else "pq simple" + (f" batch={batch}" if batch != 1 else "")

    def measure() -> benchmark.Result:
        return benchmark.run_pq(jobs, workers, sleep_ms, fork=fork, batch=batch)

    _record(ctx, section, label, measure)


def _rq(ctx: Context, section: str, jobs: int, workers: int, sleep_ms: float, *, simple: bool):
    label = "rq SimpleWorker" if simple else "rq Worker"
    if ctx.redis_url is None:
        return
    url = ctx.redis_url

    def measure() -> benchmark.Result:
        return benchmark.run_rq(jobs, workers, sleep_ms, simple=simple, redis_url=url)

    _record(ctx, section, label, measure)


def _record(
    ctx: Context, section: str, label: str, measure: Callable[[], benchmark.Result]
) -> None:
    try:
        result = measure()
    except ValueError as exc:  # a worker mode this django-pq lacks
        if not any(label in note for note in ctx.notes):
            ctx.note(f"{label} not measured: {exc}")
        return
    ctx.log(result.summary())
    if result.failed:
        ctx.note(f"{result.summary()}: failed jobs make this figure suspect")
    ctx.add(
        Figure(
            section=f"throughput: {section}",
            name=label,
            metric="rate",
            value=result.jobs_per_second,
            unit="jobs/s",
            workers=result.workers,
            sleep_ms=result.sleep_ms,
            jobs=result.jobs,
            seconds=result.seconds,
            note=f"workers registered in {result.startup_seconds:.2f} s (not timed)",
        )
    )
