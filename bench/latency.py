"""Wake-up latency: from just before the enqueueing transaction commits to the job starting.

One idle worker, started as its own command (bench/workers.py); each job
``bench.jobs.record_start`` returns ``time.time()`` when it starts (in the work horse, for a
forking worker: the fork is part of the latency). The client takes ``time.time()`` just
before the commit, waits until the job has finished, then 5 ms more, so the next job again
finds the worker idle.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from bench.context import Context
from bench.figures import Figure
from bench.jobs import record_start
from pq import benchmark

SECTION = "wake-up latency"
QUEUE = "pqlatency"
IDLE_GAP = 0.005
POLL = 0.002


def run(ctx: Context) -> None:
    jobs = 100 if ctx.quick else 1000
    start = ctx.pq_workers()
    _measure(ctx, "pq fork", jobs, lambda: _pq(jobs, start, fork=True))
    _measure(ctx, "pq simple", jobs, lambda: _pq(jobs, start, fork=False))
    if ctx.redis_url is not None:
        url, rq_start = ctx.redis_url, ctx.rq_workers(django=False)
        _measure(ctx, "rq Worker", jobs, lambda: _rq(jobs, url, rq_start))


def _measure(ctx: Context, name: str, jobs: int, sample: Callable[[], list[float]]) -> None:
    start = time.perf_counter()
    latencies = sorted(sample())
    seconds = time.perf_counter() - start
    values = {
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))],
        "max": latencies[-1],
        "mean": statistics.fmean(latencies),
    }
    for metric, value in values.items():
        ctx.add(
            Figure(SECTION, name, metric, value * 1000, "ms", workers=1, jobs=jobs, seconds=seconds)
        )
    shown = ", ".join(f"{metric} {value * 1000:.2f} ms" for metric, value in values.items())
    ctx.log(f"latency: {name}, 1 idle worker, {jobs} jobs: {shown}")


def _pq(jobs: int, start: benchmark.Start, *, fork: bool) -> list[float]:
    from django.db import transaction

    from pq.models import Job
    from pq.queue import Queue

    queue = Queue(QUEUE)
    rows = Job.objects.filter(queue=QUEUE)
    latencies = []
    with start(1, fork=fork, queue=QUEUE):
        for _ in range(jobs):
            with transaction.atomic():
                job = queue.enqueue_call(record_start, result_ttl=-1)
                before_commit = time.time()
            while True:
                status, result = rows.filter(pk=job.pk).values_list("status", "result").get()
                if status == "finished":
                    break
                if status == "failed":
                    raise RuntimeError(f"latency job {job.pk} failed; see the worker's log")
                time.sleep(POLL)
            latencies.append(result - before_commit)
            time.sleep(IDLE_GAP)
    Job.objects.filter(origin=QUEUE).delete()
    return latencies


def _rq(jobs: int, redis_url: str, start: benchmark.Start) -> list[float]:
    import rq

    client = benchmark.redis_client(redis_url)
    queue = rq.Queue(QUEUE, connection=client)
    queue.empty()
    latencies = []
    with start(1, redis_url=redis_url, queue=QUEUE):
        for _ in range(jobs):
            job = queue.create_job(record_start, result_ttl=-1)
            before_commit = time.time()  # just before the pipeline that enqueues it
            queue.enqueue_job(job)
            while True:
                status = job.get_status(refresh=True)
                if status == rq.job.JobStatus.FINISHED:
                    break
                if status == rq.job.JobStatus.FAILED:
                    raise RuntimeError(f"latency job {job.id} failed; see the worker's log")
                time.sleep(POLL)
            latencies.append(job.return_value() - before_commit)
            job.delete()
            time.sleep(IDLE_GAP)
    client.close()
    return latencies
