"""Run django-pq workers as real subprocesses in tests, and never leave one behind.

A worker subprocess starts in its own session, and each of its work horses in its own
process group (``os.setpgrp``), so killing the worker's group does not reach the horses:
:meth:`WorkerProcess.kill` collects the worker's descendants first and kills them all.
Tests use :class:`WorkerProcesses` as a fixture so teardown kills whatever is still running,
before the next test truncates the tables a live worker would hold locks on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, what: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.05)


def worker_env() -> dict[str, str]:
    """The environment of a subprocess that reaches the test database through tests.settings."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    paths = [str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    assert env.get("PQ_TEST_DATABASE_DSN"), "conftest.py exports PQ_TEST_DATABASE_DSN"
    return env


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def descendants(pid: int) -> list[int]:
    """Return the pids of every live descendant of ``pid`` (read from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_hard(pid: int) -> None:
    """SIGKILL ``pid`` and its process group (a horse leads its own), ignoring the gone."""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class WorkerProcess:
    """A worker subprocess whose stdout and stderr (the pq log) go to ``log_path``."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.popen = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=worker_env(),
                start_new_session=True,
            )
        self.pid = self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, text: str, timeout: float = 30.0, count: int = 1) -> None:
        """Wait until ``text`` shows ``count`` times in the log; fail, showing the log, if not."""
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"worker exited ({self.popen.returncode}) before logging {text!r}:\n"
                    + self.log()
                )
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"worker did not log {text!r} ({count}x) within {timeout} s:\n" + self.log()
                )
            time.sleep(0.05)

    def send(self, signum: int) -> None:
        """Send ``signum`` to the worker process only (not its horse)."""
        os.kill(self.pid, signum)

    def wait(self, timeout: float = 20.0) -> int:
        """Wait for the worker to exit and return its exit code; fail if it does not."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"worker {self.pid} still running after {timeout} s:\n" + self.log()
            ) from None

    def horses(self) -> list[int]:
        return descendants(self.pid)

    def kill(self) -> None:
        """SIGKILL the worker, its group and every descendant (horses), then reap it."""
        for pid in [*self.horses(), self.pid]:
            kill_hard(pid)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


class WorkerProcesses:
    """Start worker subprocesses; :meth:`close` kills those still running."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[WorkerProcess] = []
        self.orphans: list[int] = []

    def __enter__(self) -> WorkerProcesses:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start(self, args: list[str], label: str) -> WorkerProcess:
        log_path = self.directory / f"{label}-{len(self.started)}.log"
        process = WorkerProcess(args, log_path)
        self.started.append(process)
        return process

    def pqworker(self, *args: str) -> WorkerProcess:
        """Start ``python -m django pqworker ARGS``."""
        return self._start([sys.executable, "-m", "django", "pqworker", *args], "pqworker")

    def python_worker(
        self, queues: list[str], name: str, heartbeat_interval: float, fork: bool = True
    ) -> WorkerProcess:
        """Start a worker with a chosen heartbeat (which pqworker has no option for); with
        ``fork=False``, a simple worker (jobs run in the worker process)."""
        code = (
            "import django\n"
            "django.setup()\n"
            "from pq.worker import Worker\n"
            f"Worker({queues!r}, name={name!r}, heartbeat_interval={heartbeat_interval!r},"
            f" fork={fork!r}).work()\n"
        )
        return self._start([sys.executable, "-c", code], "python-worker")

    def close(self) -> None:
        for process in self.started:
            process.kill()
        for pid in self.orphans:
            kill_hard(pid)
