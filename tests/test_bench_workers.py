"""bench/workers.py: pqworker, django-rq's rqworker and bare ``rq worker`` started as commands.

Each runs a small benchmark against the test database and a throwaway Redis, through
pq.benchmark's protocol; the workers are checked to be those commands (their
/proc/PID/cmdline), not processes forked from the test.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import workers
from pq import benchmark
from pq.models import Job, WorkerStore
from tests.test_benchmark import children, redis_url  # noqa: F401 (a fixture)

DSN = os.environ.get("PQ_TEST_DATABASE_DSN", "")


def recording(start: Callable[..., Any], cmdlines: list[list[str]]) -> benchmark.Start:
    """Wrap ``start``: record each worker's command line while they run."""

    @contextlib.contextmanager
    def wrapped(*args: Any, **kwargs: Any) -> Iterator[benchmark.Workers]:
        with start(*args, **kwargs) as running:
            for pid in running.pids:
                raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                cmdlines.append([part.decode() for part in raw.split(b"\0") if part])
            yield running

    return wrapped


@pytest.mark.parametrize(
    ("fork", "batch", "horse_jobs", "mode"),
    [(True, 1, 1, "fork"), (False, 10, 1, "simple"), (True, 1, 8, "fork")],
)
def test_pqworker_commands_run_the_benchmark(
    fork: bool, batch: int, horse_jobs: int, mode: str
) -> None:
    before = children()
    cmdlines: list[list[str]] = []
    start = recording(functools.partial(workers.pq_workers, dsn=DSN), cmdlines)

    result = benchmark.run_pq(
        40, 2, fork=fork, batch=batch, start=start, name="pqworker", horse_jobs=horse_jobs
    )

    assert (result.backend, result.mode, result.label, result.jobs) == ("pq", mode, "pqworker", 40)
    assert result.failed == 0
    assert result.jobs_per_second > 0
    assert len(cmdlines) == 2
    for argv in cmdlines:
        assert argv[1:5] == ["-m", "django", "pqworker", benchmark.QUEUE]
        assert ("--simple" in argv) is not fork
        assert (f"--horse-jobs={horse_jobs}" in argv) is (horse_jobs != 1)
    assert not Job.objects.filter(origin=benchmark.QUEUE).exists()
    assert not WorkerStore.objects.exists()
    assert children() == before


@pytest.mark.parametrize(
    ("django", "simple", "program"),
    [(True, False, "rqworker"), (True, True, "rqworker"), (False, False, "worker")],
)
def test_rq_worker_commands_run_the_benchmark(
    redis_url: str,  # noqa: F811 (the fixture)
    django: bool,
    simple: bool,
    program: str,
) -> None:
    if django:
        pytest.importorskip("django_rq")
    before = children()
    cmdlines: list[list[str]] = []
    start = recording(functools.partial(workers.rq_workers, dsn=DSN, django=django), cmdlines)

    result = benchmark.run_rq(30, 2, simple=simple, redis_url=redis_url, start=start)

    assert (result.backend, result.jobs, result.failed) == ("rq", 30, 0)
    assert len(cmdlines) == 2
    for argv in cmdlines:
        assert program in argv
        assert ("--worker-class=rq.SimpleWorker" in argv) is simple
        assert ("django" in argv) is django  # python -m django rqworker, or the rq script
    assert children() == before


def test_a_worker_command_that_ends_early_is_a_runtime_error() -> None:
    bad_dsn = "host=127.0.0.1 port=1 dbname=nowhere connect_timeout=2"
    before = children()

    with pytest.raises(RuntimeError, match="worker command .* ended early"):
        with workers.pq_workers(1, dsn=bad_dsn):
            pass  # pragma: no cover (the worker cannot register)

    assert children() == before
