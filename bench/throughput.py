"""Throughput: django-pq and RQ workers side by side, through pq.benchmark's shared protocol.

Every worker is started as its own command (bench/workers.py): django-pq's ``pqworker``,
RQ's ``rq worker`` script (``rq ...`` labels) and django-rq's ``rqworker`` (``django-rq ...``
labels), as a site starts them. django-rq is measured at sleep 0 only: its worker is RQ's,
in a process that also loaded Django, so it differs from the bare one in what each job costs
(the fork of a bigger process), which the sleep-0 runs show; at 250 ms the job's sleep
dominates, and a third column of 3 x 8 s runs per worker count would cost about 3 minutes.

The forking runs are repeated (``REPEATS``), django-pq and RQ taking turns, and each figure is
the median run: on a shared VM one run of 1,000 jobs swings by 20% either way, more than the
margin of some targets, and taking turns gives both sides the same bad moments.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from bench.context import Context
from bench.figures import Figure
from bench.workers import has_django_rq
from pq import benchmark

FORK0 = "fork, sleep 0"
SIMPLE0 = "non-forking, sleep 0"
FORK250 = "fork, sleep 250 ms"
SIMPLE_BATCH = 100
HORSE_JOBS = 100  # pqworker --horse-jobs, the reused-horse rows of the sleep-0 table
REUSED = f"pq fork horse_jobs={HORSE_JOBS}"  # their label (pq.benchmark.Result.label)
REPEATS = 3
# Jobs per worker at sleep 250 ms. The first round starts with every worker waking at once
# and the last one ends unevenly; over 16 rounds (4 s) those two cost django-pq 3-4 points of
# the ideal rate (88% against 94% over 32 rounds, same code), and the seed measured over
# 50,000 jobs. 32 rounds keep a run at 8 s.
ROUNDS_250 = 32

Measure = Callable[[], benchmark.Result]


def run(ctx: Context) -> None:
    """Measure the matrix: forking at sleep 0, non-forking at sleep 0, forking at sleep 250."""
    quick = ctx.quick
    repeats = 1 if quick else REPEATS
    for workers in [1, 2] if quick else [1, 2, 4, 6]:
        jobs = 200 if quick else 1000
        _side_by_side(ctx, FORK0, _forking(ctx, jobs, workers, 0), repeats)
    for workers in [1, 2]:
        measures = {
            f"pq simple batch={SIMPLE_BATCH}": _pq(
                ctx, 2000 if quick else 20000, workers, 0, fork=False, batch=SIMPLE_BATCH
            ),
            "pq simple": _pq(ctx, 500 if quick else 5000, workers, 0, fork=False),
        }
        measures.update(_rqs(ctx, 300 if quick else 2000, workers, 0, simple=True))
        _side_by_side(ctx, SIMPLE0, measures, 1)
    for workers in [1, 4] if quick else [1, 2, 4, 6, 10, 20]:
        jobs = workers * (4 if quick else ROUNDS_250)
        measures = _forking(ctx, jobs, workers, 250, django_rq=False)
        if workers >= 10:  # where a horse per job falls below 92% of the ideal
            measures[REUSED] = _pq(ctx, jobs, workers, 250, fork=True, horse_jobs=HORSE_JOBS)
        _side_by_side(ctx, FORK250, measures, repeats)


def _forking(
    ctx: Context, jobs: int, workers: int, sleep_ms: float, *, django_rq: bool = True
) -> dict[str, Measure]:
    measures = {"pq fork": _pq(ctx, jobs, workers, sleep_ms, fork=True)}
    if not sleep_ms:  # reused horses: what forking costs a trivial job, saved
        # Five times the jobs: at their rate the forking rows' count would be over in ~1 s.
        measures[REUSED] = _pq(ctx, 5 * jobs, workers, 0, fork=True, horse_jobs=HORSE_JOBS)
    measures.update(_rqs(ctx, jobs, workers, sleep_ms, simple=False, django_rq=django_rq))
    return measures


def _pq(
    ctx: Context,
    jobs: int,
    workers: int,
    sleep_ms: float,
    *,
    fork: bool,
    batch: int = 1,
    horse_jobs: int = 1,
) -> Measure:
    start = ctx.pq_workers()
    mode = {"fork": fork, "batch": batch, "horse_jobs": horse_jobs}
    return lambda: benchmark.run_pq(jobs, workers, sleep_ms, start=start, **mode)


def _rqs(
    ctx: Context, jobs: int, workers: int, sleep_ms: float, *, simple: bool, django_rq: bool = True
) -> dict[str, Measure]:
    """The bare ``rq worker`` and (``django_rq``, when installed) django-rq's ``rqworker``."""
    url = ctx.redis_url
    if url is None:
        return {}
    kind = "SimpleWorker" if simple else "Worker"
    sides = [(f"rq {kind}", False)] + ([(f"django-rq {kind}", True)] if django_rq else [])
    measures: dict[str, Measure] = {}
    for label, django in sides:
        if django and not has_django_rq():
            if not any("django-rq" in note for note in ctx.notes):
                ctx.note("django-rq not measured: pip install django-rq (or '.[bench]')")
            continue
        start = ctx.rq_workers(django=django)
        measures[label] = functools.partial(
            benchmark.run_rq,
            jobs,
            workers,
            sleep_ms,
            simple=simple,
            redis_url=url,
            start=start,
            name=label,
        )
    return measures


def _side_by_side(ctx: Context, section: str, measures: dict[str, Measure], repeats: int) -> None:
    """Run each measure ``repeats`` times, taking turns; record each one's median run."""
    results: dict[str, list[benchmark.Result]] = {label: [] for label in measures}
    for _ in range(repeats):
        for label, measure in measures.items():
            try:
                result = measure()
            except ValueError as exc:  # a worker mode this django-pq lacks
                if not any(label in note for note in ctx.notes):
                    ctx.note(f"{label} not measured: {exc}")
                continue
            ctx.log(result.summary())
            if result.failed:
                ctx.note(f"{result.summary()}: failed jobs make this figure suspect")
            results[label].append(result)
    for label, runs in results.items():
        if runs:
            _record(ctx, section, label, runs)


def _record(ctx: Context, section: str, label: str, runs: list[benchmark.Result]) -> None:
    runs = sorted(runs, key=lambda result: result.jobs_per_second)
    result = runs[(len(runs) - 1) // 2]  # the median run (the lower one of an even count)
    note = f"workers registered in {result.startup_seconds:.2f} s (not timed)"
    if len(runs) > 1:
        rates = ", ".join(f"{run.jobs_per_second:,.1f}" for run in runs)
        note = f"median of {len(runs)} runs ({rates} jobs/s); {note}"
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
            note=note,
        )
    )
