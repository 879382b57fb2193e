"""Measure worker throughput for ``manage.py pqbenchmark`` and ``bench/``: django-pq against RQ.

The protocol is the same for both backends: empty the queue ``pqbenchmark`` (for django-pq,
then VACUUM its tables, as pgbench does before a run), fork the workers and wait until they
are all registered, then start the clock, enqueue
``pq.utils.do_nothing(sleep_ms)`` jobs with ``result_ttl=0`` in bulk chunks while the workers
consume them, and stop the clock when no job of the queue is left (waiting, or started).
Workers are forked from this process (``python -m bench`` passes ``start`` to start them as
their own commands instead: bench/workers.py); in them the ``pq``, ``rq.worker`` and
``rq.job`` loggers are set to WARNING so that per-job log lines do not dominate what is
measured.
Workers are stopped with SIGTERM (a warm stop), killed only if they do not stop in time,
and always reaped.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import platform
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from pq.processes import set_parent_death_signal

QUEUE = "pqbenchmark"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
LOG_NOTE = "workers log at WARNING ('pq', 'rq.worker', 'rq.job'): no per-job log lines"
PG_SETTINGS = (
    "shared_buffers",
    "synchronous_commit",
    "fsync",
    "full_page_writes",
    "max_connections",
    "wal_level",
    "autovacuum",
)

Progress = Callable[[int, int, float], None]
"""``progress(done, total, seconds)``: called about once a second while a run goes on."""
Start = Callable[..., AbstractContextManager["Workers"]]
"""Starts ``count`` workers and yields once all are registered: :func:`pq_workers`'s
signature (for ``run_pq``) or :func:`rq_workers`'s (for ``run_rq``)."""


@dataclass
class Result:
    """One measured run: ``jobs`` done by ``workers`` workers in ``seconds``."""

    backend: str  # "pq" or "rq"
    mode: str  # "fork" (a process per job) or "simple" (jobs run in the worker process)
    workers: int
    sleep_ms: float
    jobs: int
    seconds: float
    batch: int = 1
    enqueue_seconds: float = 0.0  # from the first enqueue to the last
    startup_seconds: float = 0.0  # forking the workers until all were registered
    failed: int = 0  # jobs that failed (they should not: the run is then suspect)
    name: str | None = None  # the label, when the caller names its workers itself
    horse_jobs: int = 1  # jobs a forked horse runs before it is replaced

    @property
    def label(self) -> str:
        """The backend and mode as the tables show them: ``pq simple batch=100``, ``rq Worker``."""
        if self.name:
            return self.name
        if self.backend == "rq":
            return "rq SimpleWorker" if self.mode == "simple" else "rq Worker"
        label = f"pq {self.mode}" + (f" batch={self.batch}" if self.batch != 1 else "")
        return label + (f" horse_jobs={self.horse_jobs}" if self.horse_jobs != 1 else "")

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.seconds

    @property
    def ideal_jobs_per_second(self) -> float | None:
        """What the workers could do if only the job's sleep took time (None at sleep 0)."""
        return self.workers * 1000 / self.sleep_ms if self.sleep_ms else None

    def summary(self) -> str:
        line = (
            f"{self.label}, {self.workers} worker(s), sleep {self.sleep_ms:g} ms: "
            f"{self.jobs} jobs in {self.seconds:.2f} s = {self.jobs_per_second:,.1f} jobs/s"
        )
        ideal = self.ideal_jobs_per_second
        if ideal:
            line += f" ({100 * self.jobs_per_second / ideal:.0f}% of the ideal {ideal:g})"
        if self.failed:
            line += f"; {self.failed} job(s) FAILED"
        return line


# Environment


def environment(alias: str = "default", redis_url: str | None = None) -> dict[str, Any]:
    """Describe what the figures were measured on: machine, versions, database settings.

    Reads PostgreSQL's version and settings on connection ``alias``, and Redis's version and
    persistence settings when ``redis_url`` is given (an unreachable Redis is reported, not
    raised).
    """
    env: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
        "django": _version("Django"),
        "psycopg2": _version("psycopg2"),
        "rq": _version("rq"),
        "redis_py": _version("redis"),
        "postgresql": _postgres_environment(alias),
    }
    if redis_url is not None:
        env["redis"] = _redis_environment(redis_url)
    return env


def format_environment(env: dict[str, Any]) -> str:
    """Return ``env`` (see :func:`environment`) as a few lines of text."""
    lines = [
        f"machine:    {env['platform']}; {env['cpu']}; {env['cores']} cores; "
        f"{env['ram_gib']:.1f} GiB RAM; load average "
        f"{' '.join(f'{load:.2f}' for load in env['loadavg'])}",
        f"python:     {env['python']}; Django {env['django']}; psycopg2 {env['psycopg2']}; "
        f"rq {env['rq'] or '(not installed)'}; redis-py {env['redis_py'] or '(not installed)'}",
    ]
    pg = env.get("postgresql")
    if pg:
        settings = " ".join(f"{name}={value}" for name, value in pg["settings"].items())
        lines.append(f"postgresql: {pg['server_version']} at {pg['where']}; {settings}")
    redis = env.get("redis")
    if redis:
        if "error" in redis:
            lines.append(f"redis:      unreachable at {redis['url']} ({redis['error']})")
        else:
            lines.append(
                f"redis:      {redis['version']} at {redis['url']}; "
                f"appendonly={redis['appendonly']} save={redis['save']!r}"
            )
    return "\n".join(lines)


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _ram_gib() -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024**2
    return 0.0


def _postgres_environment(alias: str) -> dict[str, Any]:
    from django.db import connections

    connection = connections[alias]
    params = connection.get_connection_params()
    with connection.cursor() as cursor:
        version, settings = server_settings(cursor, PG_SETTINGS)
    where = f"{params.get('host') or 'local socket'}:{params.get('port') or 5432}"
    return {"server_version": version, "where": where, "settings": settings}


def _redis_environment(url: str) -> dict[str, Any]:
    try:
        client = redis_client(url)
        version = client.info("server")["redis_version"]
        config: dict[str, Any] = {}
        for name in ("appendonly", "save"):
            try:
                config.update(client.config_get(name))
            except Exception:  # CONFIG may be disabled (managed Redis)
                config[name] = "?"
    except Exception as exc:
        return {"url": url, "error": str(exc)}
    return {
        "url": url,
        "version": version,
        "appendonly": config.get("appendonly"),
        "save": config.get("save"),
    }


# django-pq


def check_worker_mode(fork: bool = True, batch: int = 1, horse_jobs: int = 1) -> None:
    """Raise ValueError, as Worker would, for a fork/batch/horse_jobs combination it refuses."""
    from pq.worker import Worker

    Worker([QUEUE], fork=fork, batch=batch, horse_jobs=horse_jobs)


def run_pq(
    num_jobs: int,
    workers: int,
    sleep_ms: float = 0,
    *,
    fork: bool = True,
    batch: int = 1,
    alias: str = "default",
    progress: Progress | None = None,
    chunk: int = 1000,
    poll_interval: float = 0.02,
    start: Start | None = None,
    name: str | None = None,
    horse_jobs: int = 1,
) -> Result:
    """Run django-pq workers over ``num_jobs`` ``do_nothing(sleep_ms)`` jobs; return the rate.

    ``fork``/``batch``/``horse_jobs`` choose the worker mode (``Worker(fork=..., batch=...,
    horse_jobs=...)``). Jobs are
    enqueued ``chunk`` at a time with ``Queue.enqueue_many``. ``start`` starts the workers
    (:func:`pq_workers`, forking them from this process, by default); ``name`` labels the
    result.
    Raises ValueError for a mode this django-pq lacks and RuntimeError if a worker dies or
    the workers stop making progress.
    """
    from django.db import connections

    from pq.models import Job
    from pq.queue import Queue

    _check_counts(num_jobs, workers)
    check_worker_mode(fork, batch, horse_jobs)  # a bad mode fails before any worker is forked
    queue = Queue(QUEUE, connection=alias)
    jobs = Job.objects.using(alias)
    queue.empty()
    jobs.filter(origin=QUEUE).delete()  # started, finished or failed rows of an earlier run
    # As pgbench does before each run: the dead rows of earlier runs are cleaned up now,
    # not by an autovacuum that happens to start while this run is timed.
    with connections[alias].cursor() as cursor:
        vacuum(cursor)

    def enqueue(count: int) -> None:
        enqueue_jobs(queue, count, sleep_ms)

    # Waiting or running jobs, counted through the partial indexes on those statuses (a
    # plain "queue = ..." count would scan the whole table at every poll), in raw SQL: the
    # ORM's query building cost about 1 ms of CPU per poll, taken from the CPUs being
    # measured (RQ's poll is two Redis calls).
    def remaining() -> int:
        with connections[alias].cursor() as cursor:
            return count_unfinished(cursor, QUEUE)

    mode = {"fork": fork, "batch": batch, "horse_jobs": horse_jobs}
    with (start or pq_workers)(workers, alias=alias, **mode) as running:
        seconds, enqueue_seconds = _measure(
            num_jobs, enqueue, remaining, running, chunk, poll_interval, progress, sleep_ms
        )
    failed = jobs.filter(origin=QUEUE, status="failed").count()
    jobs.filter(origin=QUEUE).delete()
    return Result(
        backend="pq",
        mode="fork" if fork else "simple",
        workers=workers,
        sleep_ms=sleep_ms,
        jobs=num_jobs,
        seconds=seconds,
        batch=batch,
        enqueue_seconds=enqueue_seconds,
        startup_seconds=running.startup_seconds,
        failed=failed,
        name=name,
        horse_jobs=horse_jobs,
    )


def enqueue_jobs(queue: Any, count: int, sleep_ms: float = 0) -> None:
    """Enqueue ``count`` ``do_nothing(sleep_ms)`` jobs with ``result_ttl=0`` on a pq Queue.

    One ``Queue.enqueue_many`` call: one statement and one notification.
    """
    from pq.utils import do_nothing

    queue.enqueue_many([(do_nothing, (sleep_ms,))] * count, result_ttl=0)


# RQ


def require_rq() -> None:
    """Raise RuntimeError, saying what to install, unless rq and redis can be imported."""
    try:
        import redis  # noqa: F401
        import rq  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(
            f"the RQ benchmark needs the rq and redis packages ({exc}): "
            "pip install rq redis (or pip install 'django-pq[bench]')"
        ) from exc


def redis_client(url: str = DEFAULT_REDIS_URL) -> Any:
    """Return a Redis client for ``url`` after checking Redis answers.

    Raises RuntimeError when rq/redis are not installed or Redis is unreachable.
    """
    require_rq()
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        raise RuntimeError(
            f"cannot reach Redis at {url} ({exc}): start redis-server "
            "(apt-get install -y redis-server) or pass another --redis-url"
        ) from exc
    return client


def run_rq(
    num_jobs: int,
    workers: int,
    sleep_ms: float = 0,
    *,
    simple: bool = False,
    redis_url: str = DEFAULT_REDIS_URL,
    progress: Progress | None = None,
    chunk: int = 1000,
    poll_interval: float = 0.02,
    start: Start | None = None,
    name: str | None = None,
) -> Result:
    """Run RQ workers (``rq.Worker``, or ``rq.SimpleWorker`` when ``simple``) as :func:`run_pq`.

    Jobs are enqueued ``chunk`` at a time with ``Queue.enqueue_many`` (one pipeline); the
    clock stops when the queue and its StartedJobRegistry are both empty. ``start`` and
    ``name`` as for :func:`run_pq` (:func:`rq_workers` by default).
    """
    client = redis_client(redis_url)
    import rq

    from pq.utils import do_nothing

    _check_counts(num_jobs, workers)
    queue = rq.Queue(QUEUE, connection=client)
    _rq_clear(queue)
    started = queue.started_job_registry

    def enqueue(count: int) -> None:
        data = [rq.Queue.prepare_data(do_nothing, (sleep_ms,), result_ttl=0)] * count
        queue.enqueue_many(data)

    def remaining() -> int:
        return queue.count + started.get_job_count(cleanup=False)

    with (start or rq_workers)(workers, simple=simple, redis_url=redis_url) as running:
        seconds, enqueue_seconds = _measure(
            num_jobs, enqueue, remaining, running, chunk, poll_interval, progress, sleep_ms
        )
    failed = queue.failed_job_registry.get_job_count(cleanup=False)
    _rq_clear(queue)
    return Result(
        backend="rq",
        mode="simple" if simple else "fork",
        workers=workers,
        sleep_ms=sleep_ms,
        jobs=num_jobs,
        seconds=seconds,
        enqueue_seconds=enqueue_seconds,
        startup_seconds=running.startup_seconds,
        failed=failed,
        name=name,
    )


def _rq_clear(queue: Any) -> None:
    """Empty an RQ queue and its registries (left by an earlier, interrupted run)."""
    queue.empty()
    registries = (queue.started_job_registry, queue.failed_job_registry)
    queue.connection.delete(*(registry.key for registry in registries))
    finished = getattr(queue, "finished_job_registry", None)
    if finished is not None:
        queue.connection.delete(finished.key)


# The shared protocol


def _check_counts(num_jobs: int, workers: int) -> None:
    if num_jobs < 1:
        raise ValueError(f"num_jobs must be at least 1, got {num_jobs}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")


@dataclass
class Workers:
    """Forked worker processes: their pids and how long they took to register."""

    pids: list[int]
    startup_seconds: float = 0.0

    def check_alive(self) -> None:
        """Raise RuntimeError if a worker process has ended (and reap it)."""
        for pid in list(self.pids):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                self.pids.remove(pid)
                raise RuntimeError(
                    f"worker process {pid} ended early (exit code "
                    f"{os.waitstatus_to_exitcode(status)}); see its traceback above"
                )

    def wait_registered(self, registered: Callable[[], int]) -> None:
        """Wait until ``registered()`` counts all the workers; record how long it took."""
        start = time.perf_counter()
        limit = 30 + len(self.pids)
        while registered() < len(self.pids):
            self.check_alive()
            if time.perf_counter() - start > limit:
                raise RuntimeError(f"{len(self.pids)} worker(s) did not register within {limit} s")
            time.sleep(0.01)
        self.startup_seconds = time.perf_counter() - start


@contextlib.contextmanager
def pq_workers(
    count: int,
    *,
    fork: bool = True,
    batch: int = 1,
    alias: str = "default",
    queue: str = QUEUE,
    horse_jobs: int = 1,
) -> Iterator[Workers]:
    """Fork ``count`` django-pq workers on ``queue``; yield once all are registered.

    Each child runs ``Worker([queue], fork=fork, batch=batch, horse_jobs=horse_jobs).work()``;
    on exit they are stopped with SIGTERM (killed if they do not stop within 15 s) and reaped.
    Django's connections are closed first: no connection crosses ``fork()``.
    """
    from django.db import connections

    from pq.models import WorkerStore

    check_worker_mode(fork, batch, horse_jobs)
    options = {"fork": fork, "batch": batch, "horse_jobs": horse_jobs}
    prefix = worker_prefix()

    def work(index: int) -> None:
        from pq.worker import Worker

        Worker([queue], name=f"{prefix}.{index}", connection=alias, **options).work()

    def registered() -> int:
        return WorkerStore.objects.using(alias).filter(name__startswith=prefix).count()

    connections.close_all()
    with _forked(count, work) as running:
        running.wait_registered(registered)
        yield running


@contextlib.contextmanager
def rq_workers(
    count: int, *, simple: bool = False, redis_url: str = DEFAULT_REDIS_URL, queue: str = QUEUE
) -> Iterator[Workers]:
    """Fork ``count`` RQ workers (``rq.Worker``, or ``rq.SimpleWorker`` when ``simple``)."""
    client = redis_client(redis_url)
    import rq

    worker_class = rq.SimpleWorker if simple else rq.Worker
    prefix = worker_prefix()

    def work(index: int) -> None:
        connection = redis_client(redis_url)
        worker_queue = rq.Queue(queue, connection=connection)
        worker = worker_class([worker_queue], connection=connection, name=f"{prefix}.{index}")
        worker.work(logging_level="WARNING")

    def registered() -> int:
        workers = rq.Worker.all(queue=rq.Queue(queue, connection=client))
        return sum(worker.name.startswith(prefix) for worker in workers)

    try:
        with _forked(count, work) as running:
            running.wait_registered(registered)
            yield running
    finally:
        client.close()


@contextlib.contextmanager
def _forked(count: int, target: Callable[[int], None]) -> Iterator[Workers]:
    """Fork ``count`` children running ``target(index)``; stop and reap them on exit."""
    sys.stdout.flush()
    sys.stderr.flush()
    running = Workers([])
    try:
        for index in range(count):
            pid = os.fork()
            if pid == 0:
                _child(target, index)
            running.pids.append(pid)
        yield running
    finally:
        stop_processes(running.pids)


def _child(target: Callable[[int], None], index: int) -> None:
    """Run ``target(index)`` in a forked child and leave with ``os._exit`` whatever happens."""
    code = 1
    try:
        die_with_parent()
        for name in ("pq", "rq.worker", "rq.job"):
            logging.getLogger(name).setLevel(logging.WARNING)
        target(index)
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def die_with_parent() -> None:
    """Get SIGTERM if the benchmarking process dies (Linux), so no worker is left behind.

    For a worker: a forked one here, a command's ``preexec_fn`` in bench/workers.py."""
    set_parent_death_signal(signal.SIGTERM)


def worker_prefix() -> str:
    """A name prefix unique to one start of workers: each worker is ``<prefix>.<index>``, and
    those registered are counted by it."""
    return f"{QUEUE}.{os.getpid()}.{time.monotonic_ns()}"


def stop_processes(pids: list[int], timeout: float = 15.0) -> dict[int, int]:
    """SIGTERM ``pids``, wait up to ``timeout`` s, SIGKILL the rest; reap all.

    Returns each pid's wait status.
    """
    statuses: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    left = list(pids)
    while left:
        for pid in list(left):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                statuses[pid] = status
                left.remove(pid)
        if not left:
            break
        if time.monotonic() >= deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    statuses[pid] = os.waitpid(pid, 0)[1]
            break
        time.sleep(0.02)
    return statuses


@dataclass
class _Clock:
    """Call ``progress`` at most once a second."""

    total: int
    progress: Progress | None
    start: float = field(default_factory=time.perf_counter)
    next_report: float = 0.0

    def __post_init__(self) -> None:
        self.next_report = self.start + 1.0

    def due(self) -> bool:
        return self.progress is not None and time.perf_counter() >= self.next_report

    def report(self, done: int) -> None:
        now = time.perf_counter()
        self.next_report = now + 1.0
        assert self.progress is not None
        self.progress(done, self.total, now - self.start)


def _measure(
    num_jobs: int,
    enqueue: Callable[[int], None],
    remaining: Callable[[], int],
    running: Workers,
    chunk: int,
    poll_interval: float,
    progress: Progress | None,
    sleep_ms: float,
) -> tuple[float, float]:
    """Enqueue in chunks, then poll until nothing is left; return (seconds, enqueue seconds)."""
    clock = _Clock(num_jobs, progress)
    enqueued = 0
    while enqueued < num_jobs:
        count = min(chunk, num_jobs - enqueued)
        enqueue(count)
        enqueued += count
        if clock.due():
            clock.report(enqueued - remaining())
    enqueue_seconds = time.perf_counter() - clock.start
    stall_limit = 60 + 3 * sleep_ms / 1000
    last_left, last_change = -1, time.perf_counter()
    while True:
        left = remaining()
        now = time.perf_counter()
        if left == 0:
            seconds = now - clock.start
            if progress is not None:
                progress(num_jobs, num_jobs, seconds)
            return seconds, enqueue_seconds
        if left != last_left:
            last_left, last_change = left, now
        elif now - last_change > stall_limit:
            raise RuntimeError(
                f"no progress for {stall_limit:.0f} s with {left} of {num_jobs} jobs left"
            )
        running.check_alive()
        if clock.due():
            clock.report(num_jobs - left)
        time.sleep(poll_interval)


# The benchmark's own SQL: what only measuring needs, kept out of pq.sql.


def count_unfinished(cursor: Any, queue: str) -> int:
    """Count the jobs of ``queue`` waiting or running (queued, scheduled or started).

    Each status is read through its partial index, so the count does not grow with the
    finished and failed rows of the table. For polling (the benchmark's clock).
    """
    cursor.execute(
        "SELECT count(*) FROM pq_job WHERE queue = %s"
        " AND (status = 'queued' OR status = 'scheduled' OR status = 'started')",
        [queue],
    )
    return int(cursor.fetchone()[0])


def server_settings(cursor: Any, names: Sequence[str]) -> tuple[str, dict[str, str]]:
    """Return the server's version and the current values of settings ``names``."""
    cursor.execute("SHOW server_version")
    version = cursor.fetchone()[0]
    cursor.execute(
        "SELECT name, current_setting(name) FROM unnest(%s::text[]) AS name", [list(names)]
    )
    return version, dict(cursor.fetchall())


def vacuum(cursor: Any) -> None:
    """VACUUM (ANALYZE) django-pq's tables; the cursor must not be in a transaction block.

    Only the tables' owner (or a superuser) vacuums them; PostgreSQL warns and skips them
    for anyone else.
    """
    cursor.execute("VACUUM (ANALYZE) pq_job, pq_queue, pq_worker, pq_flow")
