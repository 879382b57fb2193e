"""Workers started as their own commands, the way a site starts them, for ``python -m bench``.

- django-pq: ``python -m django pqworker pqbenchmark`` (``--simple --batch=N`` for the
  non-forking modes);
- RQ inside Django: django-rq's ``python -m django rqworker pqbenchmark -v 0``
  (``--worker-class rq.SimpleWorker`` for the non-forking mode);
- bare RQ: the ``rq worker pqbenchmark --url URL --logging_level WARNING`` console script
  (``python -m rq.cli worker`` when the script is not beside this Python).

The Django commands run on ``bench.settings``, which reads the cluster's DSN and the Redis
URL from the environment set here. The repository is on every command's PYTHONPATH, so
``bench.settings`` and the job ``pq.utils.do_nothing`` import. Each context manager below
has the signature of its forking counterpart in pq.benchmark (``pq_workers``,
``rq_workers``), yields once every worker is registered and stops them with SIGTERM on exit
(SIGKILL after 15 s); a worker also gets SIGTERM if the benchmarking process dies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from importlib.util import find_spec
from pathlib import Path

from bench import settings
from pq import benchmark

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_MODULE = "bench.settings"
STOP_TIMEOUT = 15.0
DJANGO_RQ_MISSING = "django-rq is not installed: pip install django-rq (or '.[bench]')"


class Commands(benchmark.Workers):
    """Worker commands started with ``subprocess.Popen``; ``pids`` are theirs."""

    def __init__(self) -> None:
        super().__init__([])
        self.processes: list[subprocess.Popen[bytes]] = []

    def check_alive(self) -> None:
        """Raise RuntimeError if a worker command has ended."""
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(
                    f"worker command {process.pid} ended early (exit code {process.returncode}): "
                    f"{' '.join(map(str, process.args))}; see its output above"
                )

    def stop(self) -> None:
        """SIGTERM every command (a warm stop), SIGKILL those left after STOP_TIMEOUT; reap all."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def environment(dsn: str, redis_url: str | None = None) -> dict[str, str]:
    """Return the environment of a worker command: this one, plus the bench's settings."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    env[settings.DSN_ENV] = dsn
    if redis_url is not None:
        env[settings.REDIS_URL_ENV] = redis_url
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + path if path else "")
    return env


def pq_argv(name: str, *, fork: bool, batch: int, queue: str, horse_jobs: int = 1) -> list[str]:
    """``python -m django pqworker QUEUE --name NAME``, with ``--simple --batch=N`` unless fork,
    ``--horse-jobs=N`` for reused horses."""
    argv = [sys.executable, "-m", "django", "pqworker", queue, f"--name={name}"]
    if not fork:
        argv += ["--simple", f"--batch={batch}"]
    if horse_jobs != 1:
        argv.append(f"--horse-jobs={horse_jobs}")
    return argv


def rqworker_argv(name: str, *, simple: bool, queue: str) -> list[str]:
    """django-rq's ``python -m django rqworker QUEUE --name NAME -v 0`` (logs at WARNING)."""
    argv = [sys.executable, "-m", "django", "rqworker", queue, f"--name={name}", "-v", "0"]
    if simple:
        argv.append("--worker-class=rq.SimpleWorker")
    return argv


def rq_argv(name: str, *, simple: bool, redis_url: str, queue: str) -> list[str]:
    """The ``rq worker QUEUE --url URL --name NAME --logging_level WARNING`` console script."""
    script = Path(sys.executable).parent / "rq"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "rq.cli"]
    argv = [*command, "worker", queue, f"--url={redis_url}", f"--name={name}"]
    argv += ["--logging_level=WARNING"]
    if simple:
        argv.append("--worker-class=rq.SimpleWorker")
    return argv


@contextlib.contextmanager
def started(argvs: Sequence[list[str]], env: dict[str, str]) -> Iterator[Commands]:
    """Start each command of ``argvs`` in the repository's root; stop and reap them on exit."""
    sys.stdout.flush()
    sys.stderr.flush()
    running = Commands()
    try:
        for argv in argvs:
            process = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                preexec_fn=benchmark.die_with_parent,
                stdin=subprocess.DEVNULL,
            )
            running.processes.append(process)
            running.pids.append(process.pid)
        yield running
    finally:
        running.stop()


@contextlib.contextmanager
def pq_workers(
    count: int,
    *,
    dsn: str,
    fork: bool = True,
    batch: int = 1,
    alias: str = "default",
    queue: str = benchmark.QUEUE,
    horse_jobs: int = 1,
) -> Iterator[Commands]:
    """Start ``count`` ``pqworker`` commands on ``queue``; yield once all are registered.

    ``dsn`` is the database the commands work on: ``alias``'s, where they are counted.
    """
    from pq.models import WorkerStore

    benchmark.check_worker_mode(fork, batch, horse_jobs)
    prefix = benchmark.worker_prefix()
    mode = {"fork": fork, "batch": batch, "queue": queue, "horse_jobs": horse_jobs}
    argvs = [pq_argv(f"{prefix}.{i}", **mode) for i in range(count)]

    def registered() -> int:
        return WorkerStore.objects.using(alias).filter(name__startswith=prefix).count()

    with started(argvs, environment(dsn)) as running:
        running.wait_registered(registered)
        yield running


@contextlib.contextmanager
def rq_workers(
    count: int,
    *,
    dsn: str,
    django: bool,
    simple: bool = False,
    redis_url: str = benchmark.DEFAULT_REDIS_URL,
    queue: str = benchmark.QUEUE,
) -> Iterator[Commands]:
    """Start ``count`` RQ workers, django-rq's ``rqworker`` when ``django`` else ``rq worker``.

    ``dsn`` is the Django site's database (django-rq's workers close its connections before
    each fork; no job here uses it). Yields once all the workers are registered in Redis.
    """
    client = benchmark.redis_client(redis_url)
    import rq

    if django and not has_django_rq():
        raise RuntimeError(DJANGO_RQ_MISSING)
    prefix = benchmark.worker_prefix()
    if django:
        argvs = [rqworker_argv(f"{prefix}.{i}", simple=simple, queue=queue) for i in range(count)]
    else:
        argvs = [
            rq_argv(f"{prefix}.{i}", simple=simple, redis_url=redis_url, queue=queue)
            for i in range(count)
        ]

    def registered() -> int:
        workers = rq.Worker.all(queue=rq.Queue(queue, connection=client))
        return sum(worker.name.startswith(prefix) for worker in workers)

    try:
        with started(argvs, environment(dsn, redis_url)) as running:
            running.wait_registered(registered)
            yield running
    finally:
        client.close()


def has_django_rq() -> bool:
    """Whether django-rq is installed (its ``rqworker`` can be measured)."""
    return find_spec("django_rq") is not None
