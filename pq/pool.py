"""A supervisor of several forking workers: ``manage.py pqworker --concurrency N``.

Like RQ's ``worker-pool`` and Celery's ``-c``: the supervisor forks N worker processes,
restarts one that dies, and on SIGTERM or SIGINT asks them all to stop after their current
job and waits for them (a second signal is passed on: the workers then kill their jobs).
Worker i is named ``<base>-<i>`` (base: ``--name``, else ``hostname.<supervisor pid>``) and
keeps its name when restarted, so the restarted worker takes the dead one's name over at
once and its started job is failed as abandoned now, not when its heartbeat expires.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from django.db import connections

from pq.processes import set_parent_death_signal

logger = logging.getLogger("pq")

RESTART_DELAY = 1.0  # seconds before restarting a worker that died, doubled while it keeps dying
MAX_RESTART_DELAY = 30.0
POLL = 0.2  # seconds between checks of the children


class WorkerPool:
    """Run ``size`` workers made by ``make_worker(name)`` in forked processes."""

    def __init__(
        self,
        size: int,
        make_worker: Callable[[str], Any],
        *,
        name: str | None = None,
        burst: bool = False,
    ) -> None:
        if type(size) is not int or size < 1:
            raise ValueError(
                f"--concurrency must be a whole number of workers, 1 or more, got {size!r}"
            )
        self.size = size
        self.make_worker = make_worker
        self.base = name or f"{socket.gethostname()}.{os.getpid()}"
        self.burst = burst
        self.children: dict[int, int] = {}  # pid -> worker number
        self._signals = 0
        self._delay = dict.fromkeys(range(1, size + 1), RESTART_DELAY)
        self._due: dict[int, float] = {}  # worker number -> when to restart it
        self._started: dict[int, float] = {}  # worker number -> when it last started
        self._told: set[int] = set()  # pids already asked to stop

    def name_of(self, number: int) -> str:
        return f"{self.base}-{number}"

    def run(self) -> int:
        """Supervise until stopped (or, with ``burst``, until every worker has exited; a
        burst worker is never restarted); return the exit code: 0, or 1 if a worker failed."""
        old = {s: signal.signal(s, self._request) for s in (signal.SIGTERM, signal.SIGINT)}
        failed = False
        try:
            for number in range(1, self.size + 1):
                if self._signals:
                    break
                self._start(number)
            while self.children or self._due:
                failed = self._reap() or failed
                if self._signals == 0:
                    self._restart_due()
                else:
                    self._due.clear()
                    self._tell(set(self.children) - self._told)  # one forked as it came
                time.sleep(POLL)
        finally:
            for signum, handler in old.items():
                signal.signal(signum, handler)
        logger.info("All %d workers of %s stopped", self.size, self.base)
        return 1 if failed else 0

    def _request(self, signum: int, frame: Any) -> None:
        self._signals += 1
        logger.warning(
            "Supervisor got %s: %s", signal.Signals(signum).name,
            "asking the workers to stop after their current job" if self._signals == 1
            else "passing it on: the workers kill their current job",
        )  # fmt: skip
        # The first signal asks each worker once; a second is passed on to all of them.
        self._tell(set(self.children) if self._signals > 1 else set(self.children) - self._told)

    def _tell(self, pids: set[int]) -> None:
        """Send SIGTERM to the workers ``pids``."""
        for pid in pids:
            self._told.add(pid)
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _start(self, number: int) -> None:
        connections.close_all()  # never share the supervisor's connections with a child
        pid = os.fork()
        if pid == 0:
            self._child(number)
        self.children[pid] = number
        self._started[number] = time.monotonic()
        logger.info("Started worker %s (pid %d)", self.name_of(number), pid)

    def _child(self, number: int) -> None:
        code = 1
        try:
            # A worker outlives no supervisor: it stops, after its job, when the supervisor dies.
            set_parent_death_signal(signal.SIGTERM)
            # Its own process group: a Ctrl-C in a terminal reaches the supervisor alone,
            # which passes it on once (the group's SIGINT plus ours would count as two).
            os.setpgid(0, 0)
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)
            if os.getppid() == 1:  # the supervisor died before the signal was armed
                os._exit(1)
            self.make_worker(self.name_of(number)).work(burst=self.burst)
            code = 0
        except BaseException:
            logger.exception("Worker %s crashed", self.name_of(number))
        finally:
            logging.shutdown()
            os._exit(code)

    def _reap(self) -> bool:
        """Collect exited workers, planning restarts; return whether one that is not to be
        restarted (stopping, or a burst) exited with an error."""
        failed = False
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                break
            if pid == 0:
                break
            number = self.children.pop(pid, None)
            if number is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if self._signals or self.burst:  # a burst worker is done, or failed: not restarted
                failed = failed or code != 0
                logger.info("Worker %s (pid %d) exited (%s)", self.name_of(number), pid, code)
                continue
            if time.monotonic() - self._started[number] > 60:
                self._delay[number] = RESTART_DELAY  # it had been working: not crash-looping
            delay = self._delay[number]
            logger.warning(
                "Worker %s (pid %d) exited (%s); restarting it in %.0f s",
                self.name_of(number), pid, code, delay,
            )  # fmt: skip
            self._due[number] = time.monotonic() + delay
            self._delay[number] = min(delay * 2, MAX_RESTART_DELAY)
        return failed

    def _restart_due(self) -> None:
        now = time.monotonic()
        for number, when in list(self._due.items()):
            if when <= now:
                del self._due[number]
                self._start(number)
