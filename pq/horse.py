"""Running one job: in a forked work horse (the default) or in the worker's own process.

The horse is a child process in its own process group, killed by the kernel when its worker
dies (Linux; see :func:`_die_with`), so no horse runs on past its worker's timeout. It gets
no database connection: a connection the parent had open stays untouched (the child never
uses nor closes it, and leaves with ``os._exit``), and Django opens a fresh one only if the
job uses the ORM. The horse reports the outcome to the parent through a pipe; the parent
enforces the timeout by killing the horse's process group, and turns any other end of the
horse (an exit, a signal) into a failure with the reason.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import pickle
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections

from pq.connection import forget_wait_callback
from pq.exceptions import JobTimeoutException, WorkHorseDied
from pq.models import Job
from pq.processes import set_parent_death_signal
from pq.serialization import to_json

logger = logging.getLogger("pq")

ExcHandler = Callable[..., Any]


@dataclass
class Outcome:
    """How a job ended: its JSON result, or the traceback text, whether to move it to failed
    and whether it may be retried (an exception handler can say not: ``job.stop_retrying()``).

    ``error`` is set when the worker, not the job, saw the failure (a timeout, a dead horse):
    the exception handlers then run in the worker with it.
    """

    ok: bool
    result: Any = None
    exc_info: str = ""
    move_to_failed: bool = True
    error: Exception | None = None
    retry: bool = True

    def to_json(self) -> bytes:
        """Encode a job's own outcome for the pipe from the horse: one line of JSON."""
        return (
            json.dumps(
                {
                    "ok": self.ok,
                    "result": self.result,
                    "exc_info": self.exc_info,
                    "move_to_failed": self.move_to_failed,
                    "retry": self.retry,
                }
            ).encode()
            + b"\n"
        )

    @classmethod
    def failure(cls, error: Exception) -> Outcome:
        """The outcome of a job the worker saw fail with ``error``."""
        return cls(False, exc_info=f"{type(error).__name__}: {error}", error=error)


def perform(
    job: Job, handlers: Sequence[ExcHandler], func: Callable[..., Any] | None = None
) -> Outcome:
    """Run ``job`` in this process; on an exception run the handler chain. Never raises.

    ``func`` is the job's callable when the caller has resolved it already.
    """
    try:
        if func is None:
            func = job.get_callable()
        if _is_django_task(func):
            from pq.tasks import run_task  # only where a Django Tasks framework is installed

            result = run_task(job, func)
        else:
            result = job.perform(func)
        encoded = to_json(result)
    except BaseException:
        exc_info = sys.exc_info()
        text = traceback.format_exc()
        logger.error("Job %s %s failed:\n%s", job.pk, describe_safely(job), text)
        move_to_failed = run_handlers(handlers, job, exc_info)
        return Outcome(False, exc_info=text, move_to_failed=move_to_failed, retry=job.may_retry)
    if result is None:
        logger.info("Job ended normally without result")
    else:
        logger.info("Job result = %r", result)
    return Outcome(True, result=encoded)


def _is_django_task(func: Any) -> bool:
    """Whether ``func`` is a Django Task (``@task``), which pq.tasks runs.

    Looked up among the modules already imported: a Task object comes from one of them.
    """
    for name in ("django.tasks.base", "django_tasks.base"):
        module = sys.modules.get(name)
        if module is not None and isinstance(func, module.Task):
            return True
    return False


def describe_safely(job: Job) -> str:
    """Return the job's description, or a placeholder when it cannot be made (never raises)."""
    try:
        return job.get_description()
    except Exception as exc:
        return f"{job.func}(<not describable: {type(exc).__name__}>)"


def run_handlers(handlers: Sequence[ExcHandler], job: Job, exc_info: tuple[Any, Any, Any]) -> bool:
    """Call the exception handlers, newest first, as RQ does.

    A handler returning False stops the chain; returning True or None passes the job on. A
    handler that raises is logged and passed over. Returns True when the chain ran to its
    end, whose last step is moving the job to the failed queue.
    """
    for handler in reversed(handlers):
        try:
            fall_through = handler(job, *exc_info)
        except Exception:
            logger.exception("Exception handler %r failed for job %s", handler, job.pk)
            continue
        if fall_through is False:
            return False
    return True


@dataclass
class Horse:
    """A forked child that runs one job; the parent polls it with :meth:`wait`.

    A busy worker forks a horse with its job (:meth:`start`). An idle worker keeps one forked
    ahead of time (:meth:`prefork`) and hands it the next job (:meth:`dispatch`), so that job
    starts without waiting for a fork. Each horse runs exactly one job in a fresh fork.
    """

    pid: int
    pipe: int
    pidfd: int | None
    job_pipe: int
    deadline: float = math.inf
    timeout: int = 0
    data: bytes = b""

    @classmethod
    def prefork(cls, handlers: Sequence[ExcHandler]) -> Horse:
        """Fork a horse that waits for a job, runs it and reports its Outcome.

        A horse whose job pipe is closed without a job (:meth:`dismiss`, or the worker died)
        exits without running anything.
        """
        job_read, job_write = os.pipe()

        def run(report: int) -> None:
            os.close(job_write)
            payload = _read_all(job_read)
            if payload:
                _write_all(report, perform(pickle.loads(payload), handlers).to_json())

        pid, read_end, pidfd = fork_horse(run)
        os.close(job_read)
        return cls(pid, read_end, pidfd, job_write)

    @classmethod
    def start(
        cls,
        job: Job,
        timeout: int,
        handlers: Sequence[ExcHandler],
        func: Callable[..., Any] | None = None,
    ) -> Horse:
        """Fork a horse that runs ``job`` at once, within ``timeout`` seconds.

        The job (and its resolved ``func``) are in the horse's memory from the fork: nothing
        is pickled or sent, which makes this cheaper than :meth:`prefork` plus
        :meth:`dispatch` when no horse was forked ahead.
        """

        def run(report: int) -> None:
            _write_all(report, perform(job, handlers, func).to_json())

        horse = cls(*fork_horse(run), job_pipe=-1)
        horse.deadline = time.monotonic() + timeout
        horse.timeout = timeout
        return horse

    def dispatch(self, job: Job, timeout: int) -> bool:
        """Hand the horse ``job``, to end within ``timeout`` seconds; False if the horse died.

        A job that does not pickle (arguments nested too deep) raises what pickling raised,
        with the horse dismissed; :meth:`start` runs such a job, as it pickles nothing.
        """
        try:
            payload = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:
            self.dismiss()
            raise
        try:
            _write_all(self.job_pipe, payload)
        except BrokenPipeError:
            return False
        finally:
            self.job_pipe = -1
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        return True

    def dismiss(self) -> None:
        """Send away a horse that got no job, and reap it."""
        if self.job_pipe >= 0:
            os.close(self.job_pipe)
            self.job_pipe = -1
        self.reap(wait=math.inf)

    def wait(self, seconds: float, wakeup_fd: int | None) -> Outcome | None:
        """Wait up to ``seconds`` for the horse; return its Outcome once it has ended, else None.

        Returns early (None) when ``wakeup_fd`` becomes readable (a signal arrived). Kills the
        horse and returns a timeout failure once its deadline passes.
        """
        if time.monotonic() >= self.deadline:
            return self.kill(
                JobTimeoutException(
                    f"Job exceeded its timeout of {self.timeout} seconds; the work horse was killed"
                )
            )
        watch = [fd for fd in (self.pipe, self.pidfd, wakeup_fd) if fd is not None and fd >= 0]
        limit = min(seconds, max(0.0, self.deadline - time.monotonic()))
        if self.pidfd is None:
            limit = min(limit, 0.05)  # no pidfd on this platform: poll for the exit
        ready, _, _ = select.select(watch, [], [], limit)
        if wakeup_fd is not None and wakeup_fd in ready:
            drain(wakeup_fd)
        if self.pipe in ready:
            self._read(blocking=True)
            if self.data.endswith(b"\n"):
                # The report is complete and the horse only exits now: take the outcome
                # without waiting for the exit; the caller reaps the horse (reap()).
                return self._outcome()
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return None
        self._read(blocking=False)  # what the horse wrote before it exited
        return self._finish(status)

    def kill(self, reason: Exception) -> Outcome:
        """Kill the horse and its process group, reap it, and return a failure saying ``reason``.

        The horse itself is signalled too: a job may have moved it to another group.
        """
        for kill in (os.killpg, os.kill):
            try:
                kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.waitpid(self.pid, 0)
        self.pid = 0
        self._close()
        return Outcome.failure(reason)

    def _read(self, blocking: bool) -> None:
        """Read what the horse wrote: one chunk, or (not blocking) all there is."""
        if self.pipe < 0:
            return
        os.set_blocking(self.pipe, blocking)
        while True:
            try:
                chunk = os.read(self.pipe, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                os.close(self.pipe)
                self.pipe = -1
                return
            self.data += chunk
            if blocking:
                return

    def reap(self, wait: float = 0.0) -> bool:
        """Collect the exit of a horse whose outcome was taken, waiting up to ``wait`` seconds
        for it (``math.inf``: until it exits); return whether it has exited."""
        if self.pid == 0:
            return True
        flags = os.WNOHANG
        if wait > 0:
            if self.pidfd is not None:
                select.select([self.pidfd], [], [], None if math.isinf(wait) else wait)
            elif math.isinf(wait):
                flags = 0
        pid, _ = os.waitpid(self.pid, flags)
        if pid == 0:
            return False
        self.pid = 0
        self._close()
        return True

    def _outcome(self) -> Outcome:
        return Outcome(**json.loads(self.data))

    def _finish(self, status: int) -> Outcome:
        self.pid = 0
        self._close()
        if self.data.endswith(b"\n"):
            return self._outcome()
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            reason = f"the work horse was killed by signal {number} ({signal.Signals(number).name})"
        else:
            reason = f"the work horse exited with code {os.waitstatus_to_exitcode(status)}"
        return Outcome.failure(WorkHorseDied(f"{reason} before reporting a result"))

    def _close(self) -> None:
        if self.job_pipe >= 0:
            os.close(self.job_pipe)
            self.job_pipe = -1
        if self.pipe >= 0:
            os.close(self.pipe)
            self.pipe = -1
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def fork_horse(run: Callable[[int], None]) -> tuple[int, int, int | None]:
    """Fork a horse that calls ``run(report_fd)`` and leaves with ``os._exit``.

    Django's connections are closed first: no connection may cross the fork. Returns the
    horse's pid, the read end of its report pipe and a pidfd for it (None where the platform
    has none).
    """
    connections.close_all()
    read_end, write_end = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the horse
        code = 1
        try:
            os.close(read_end)
            _become_horse(parent)
            run(write_end)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    _own_group(pid)
    return pid, read_end, os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None


def _own_group(pid: int) -> None:
    """Put the horse ``pid`` in its own process group, from the parent.

    The horse does the same (``setpgrp``); whichever runs first wins, so the group exists
    once :func:`fork_horse` returns and a kill right after the fork reaches the horse. Refused
    (ignored) when the horse exited already or made itself a session leader.
    """
    try:
        os.setpgid(pid, pid)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.ESRCH, errno.EPERM):
            raise


def _become_horse(parent: int) -> None:
    """Prepare a freshly forked child of ``parent`` to run a job."""
    os.setpgrp()
    _die_with(parent)
    forget_wait_callback()  # forked during the worker's claim: queries block as usual
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    # Connections opened by the parent are shared sockets: forget them without closing
    # (closing would end the parent's session); Django opens new ones if the job needs them.
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            _inherited.append(conn.connection)
            conn.connection = None


_inherited: list[Any] = []


def _die_with(parent: int) -> None:
    """Have the kernel SIGKILL this horse when its worker, ``parent``, dies.

    The worker enforces the job's timeout; a horse left without it would run unbounded
    (and, on a serial queue, beside the next job of its queue). The signal comes when the
    thread that forked the horse ends: workers fork from the thread running their loop,
    which outlives its horses. If the worker died before ``prctl`` was called, the horse
    has been re-parented already and leaves at once. Where there is no ``prctl`` (not
    Linux), a horse outlives a worker killed with SIGKILL.
    """
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to the blocking pipe ``fd``, which stays open."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, then close it (the horse's one report, one job)."""
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def drain(fd: int) -> None:
    """Read and discard what a non-blocking pipe holds (signal wake-ups)."""
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
