"""python -m bench: one command that starts its own PostgreSQL and Redis and runs every section.

PostgreSQL keeps its durable defaults; ``--fast`` runs on ``FAST_SETTINGS`` instead (fsync,
synchronous_commit, full_page_writes off). Writes bench/out/results.csv, results.txt and
results.png (bench/out/fast/ with ``--fast``; see bench/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

OUT = Path(__file__).resolve().parent / "out"
SECTIONS = ["pgbench", "throughput", "enqueue", "latency", "memory", "queues", "serial", "big"]
WORKERS_NOTE = (
    "each started as its own command: python -m django pqworker (django-pq), "
    "python -m django rqworker (django-rq), rq worker --url (bare RQ)"
)
DEFAULT_SECTIONS = [
    "pgbench",
    "throughput",
    "enqueue",
    "latency",
    "memory",
    "queues",
    "serial",
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark django-pq against RQ on a throwaway PostgreSQL and Redis.",
    )
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument(
        "--big", action="store_true", help="also the big-queue section (1,000,000 jobs; minutes)"
    )
    parser.add_argument(
        "--only",
        help=f"comma-separated sections to run, of: {', '.join(SECTIONS)}",
    )
    parser.add_argument("--no-rq", action="store_true", help="measure django-pq alone")
    parser.add_argument(
        "--fast",
        action="store_true",
        help="run PostgreSQL with fsync, synchronous_commit and full_page_writes off "
        "(not durable) instead of its defaults",
    )
    parser.add_argument(
        "--out", type=Path, help=f"output folder ({OUT}; {OUT / 'fast'} with --fast)"
    )
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = OUT / "fast" if args.fast else OUT
    if args.only:
        args.sections = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = sorted(set(args.sections) - set(SECTIONS))
        if unknown:
            parser.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    else:
        args.sections = DEFAULT_SECTIONS + (["big"] if args.big else [])
    return args


@contextlib.contextmanager
def _redis(enabled: bool) -> Iterator[str | None]:
    if not enabled:
        yield None
        return
    from bench import services

    with services.redis() as url:
        yield url


def _modules() -> dict[str, ModuleType]:
    from bench import bigqueue, enqueue, latency, memory, pgbench, queues, serial, throughput

    return {
        "pgbench": pgbench,
        "throughput": throughput,
        "enqueue": enqueue,
        "latency": latency,
        "memory": memory,
        "queues": queues,
        "serial": serial,
        "big": bigqueue,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    from bench import services

    try:
        with services.postgres(args.fast) as dsn, _redis(not args.no_rq) as redis_url:
            services.configure_django(dsn)
            return _run(args, command.strip(), dsn, redis_url)
    except RuntimeError as exc:
        print(f"python -m bench: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, command: str, dsn: str, redis_url: str | None) -> int:
    from bench import report
    from bench.context import CLUSTERS, DEFAULTS, FAST, Context
    from pq import benchmark

    cluster = FAST if args.fast else DEFAULTS
    env = benchmark.environment(redis_url=redis_url)
    env_text = "\n".join(
        [
            benchmark.format_environment(env),
            f"cluster:    {cluster}: {CLUSTERS[cluster]}",
            f"workers:    {WORKERS_NOTE}",
            f"note:       {benchmark.LOG_NOTE}",
        ]
    )
    print(env_text, flush=True)
    ctx = Context(dsn=dsn, redis_url=redis_url, quick=args.quick, cluster=cluster)
    modules = _modules()
    failed = False
    for name in args.sections:
        ctx.log(f"== {name}")
        start = time.monotonic()
        try:
            modules[name].run(ctx)
        except Exception:
            failed = True
            ctx.note(f"section {name} failed:\n{traceback.format_exc()}")
        ctx.walltimes[name] = time.monotonic() - start
        ctx.log(f"== {name} took {ctx.walltimes[name]:.0f} s")
        report.write_all(args.out, ctx, env_text, command, plot=False)  # keep what was measured
    load = " ".join(f"{value:.2f}" for value in benchmark.environment(redis_url=None)["loadavg"])
    ctx.note(f"load average at the end: {load}")
    paths = report.write_all(args.out, ctx, env_text, command)
    print()
    print((args.out / "results.txt").read_text(encoding="utf-8"))
    print("Wrote " + ", ".join(str(path) for path in paths))
    return 1 if failed else 0
