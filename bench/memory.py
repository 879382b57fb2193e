"""A worker's memory: its RSS (VmRSS in /proc/PID/status) while it works through a queue.

The jobs are enqueued first; one worker is then started (``pqworker``, a command of its own:
bench/workers.py) and sampled every 0.1 s until the
queue is empty. Reported: RSS at the first sample, once warm (after 1% of the jobs: modules
imported, buffers sized), at the end and at most, and the growth from warm to the end.
"""

from __future__ import annotations

import time

from bench.context import Context
from bench.figures import Figure
from pq import benchmark

SECTION = "memory"
QUEUE = "pqmemory"
SAMPLE_EVERY = 0.1


def run(ctx: Context) -> None:
    _measure(ctx, "pq simple batch=100", 10_000 if ctx.quick else 100_000, fork=False, batch=100)
    _measure(ctx, "pq fork", 500 if ctx.quick else 2_000, fork=True, batch=1)


def rss_kib(pid: int) -> int:
    """Return a process's resident set size in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def _measure(ctx: Context, name: str, jobs: int, *, fork: bool, batch: int) -> None:
    from pq.models import Job
    from pq.queue import Queue

    queue = Queue(QUEUE)
    rows = Job.objects.filter(queue=QUEUE)
    rows.delete()
    for start in range(0, jobs, 1000):
        benchmark.enqueue_jobs(queue, min(1000, jobs - start))
    samples: list[tuple[int, int]] = []  # (jobs done, RSS KiB)
    start = time.perf_counter()
    with ctx.pq_workers()(1, fork=fork, batch=batch, queue=QUEUE) as running:
        pid = running.pids[0]
        while True:
            left = rows.count()
            samples.append((jobs - left, rss_kib(pid)))
            if left == 0:
                break
            running.check_alive()
            time.sleep(SAMPLE_EVERY)
    seconds = time.perf_counter() - start
    first = samples[0][1]
    warm = next(rss for done, rss in samples if done >= jobs // 100)
    last = samples[-1][1]
    peak = max(rss for _, rss in samples)
    growth = 100 * (last - warm) / warm
    for metric, value, unit in [
        ("first", first / 1024, "MiB"),
        ("warm", warm / 1024, "MiB"),
        ("last", last / 1024, "MiB"),
        ("max", peak / 1024, "MiB"),
        ("growth", growth, "%"),
    ]:
        ctx.add(Figure(SECTION, name, metric, value, unit, workers=1, jobs=jobs, seconds=seconds))
    ctx.log(
        f"memory: {name}, {jobs} jobs in {seconds:.1f} s, {len(samples)} samples: RSS first "
        f"{first / 1024:.1f} MiB, warm {warm / 1024:.1f}, last {last / 1024:.1f}, "
        f"max {peak / 1024:.1f}; growth warm->last {growth:+.1f}%"
    )
