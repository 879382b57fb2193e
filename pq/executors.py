"""Where a worker runs a job: in a forked work horse, or in its own process.

Both answer :meth:`Executor.execute` with the job's Outcome; the worker's loop neither knows
nor asks which one runs its jobs.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg2

from pq import conf, hugepages
from pq.duties import Duties
from pq.exceptions import JobTimeoutException, WorkerStopped
from pq.horse import ExcHandler, Horse, Outcome, perform
from pq.models import Job
from pq.serialization import import_callable

if TYPE_CHECKING:
    from pq.worker import StopRequests

logger = logging.getLogger("pq")

SPARE_AFTER = 0.05  # seconds a job runs before its worker forks the next horse beside it
REAP_WITHIN = 1.0  # seconds a worker waits for a horse that reported to exit
COLLAPSE_EVERY = 1000  # jobs a forking worker runs between two collapses of its heap


class Executor:
    """Run a worker's jobs, one at a time, and return their outcomes.

    ``handlers`` is the worker's exception handler chain (the list itself: handlers pushed
    later count); ``duties`` are kept while a job runs; ``stop`` tells how often the worker
    was asked to stop and which pipe a signal wakes.
    """

    def __init__(
        self,
        worker_name: str,
        handlers: list[ExcHandler],
        default_timeout: int,
        duties: Duties,
        stop: StopRequests,
    ) -> None:
        self.worker_name = worker_name
        self.handlers = handlers
        self.default_timeout = default_timeout
        self.duties = duties
        self.stop = stop
        self._callables: dict[str, Any] = {}

    def execute(self, job: Job) -> Outcome:
        """Run ``job`` within its timeout and return its Outcome.

        What keeps the worker from running it (e.g. a fork that fails) is the job's failure.
        Database errors are the loop's to handle.
        """
        timeout = job.timeout or self.default_timeout
        try:
            return self._run(job, timeout)
        except psycopg2.Error:
            raise
        except Exception as exc:
            logger.exception("Worker %s could not run job %s", self.worker_name, job.pk)
            return Outcome.failure(exc)

    def idle(self) -> None:
        """Prepare for the next job while the worker waits for one."""

    def meanwhile(self) -> Callable[[], None] | None:
        """Return what to do while the worker's claim waits for the server (None: nothing)."""
        return None

    def interrupt(self) -> None:
        """End the running job at once (from the handler of a second stop signal)."""

    def close(self) -> None:
        """Release what the executor holds; it may run jobs again afterwards."""

    def _run(self, job: Job, timeout: int) -> Outcome:
        raise NotImplementedError

    def _preload(self, job: Job) -> Any:
        """Import the job's function in the worker, so that every horse inherits it imported.

        Returns None (the job then imports it, and reports any error as its failure) for an
        instance method or a function that cannot be imported.
        """
        if job.instance is not None:
            return None
        func = self._callables.get(job.func)
        if func is None:
            try:
                func = self._callables[job.func] = import_callable(job.func)
            except Exception:
                return None
        return func


class ForkingExecutor(Executor):
    """Run each job in a work horse of its own, forked by the worker (see pq.horse).

    While idle the worker keeps a spare horse, forked ahead, so a job starts without a fork.
    With CPUs free for it, the spare is also forked while the worker's claim waits for the server
    (:meth:`meanwhile`). A horse that reported and has not exited yet is reaped before the
    next job.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._exiting: list[Horse] = []
        self._spare: Horse | None = None
        self._jobs_to_collapse = 0

    def idle(self) -> None:
        """Fork a spare horse, unless there is one already."""
        if self._spare is None:
            self._collapse_heap()
            self._spare = Horse.prefork(self.handlers)

    def meanwhile(self) -> Callable[[], None] | None:
        """Fork the next horse while the claim is under way, when there is no spare, the
        worker is not stopping, and CPUs are free for the fork and the server's work both.

        The fork then costs the next job no time. Measured for a lone worker of trivial jobs
        on 2 CPUs: 4% more jobs a second; 11-13% more when forking whenever one CPU is free,
        but then 5% fewer for 2 workers: with the CPUs busy the fork takes CPU from the
        server and the other workers, and a spare costs more than a horse forked with its
        job (the job is pickled to it, and it lives on beside the worker longer). Without
        the CPUs, the job forks its horse after the claim, as before.
        """
        if self._spare is None and self.stop.count == 0 and _cpu_free(more=1):
            return self.idle
        return None

    def close(self) -> None:
        """Dismiss the spare horse and reap the exiting ones."""
        if self._spare is not None:
            self._spare.dismiss()
            self._spare = None
        for horse in self._exiting:
            horse.reap(wait=math.inf)
        self._exiting = []

    def _run(self, job: Job, timeout: int) -> Outcome:
        self._exiting = [horse for horse in self._exiting if not horse.reap()]
        self._collapse_heap()
        self._jobs_to_collapse -= 1
        horse = self._horse_for(job, timeout, self._preload(job))
        # A job still running after SPARE_AFTER seconds is not a trivial one: fork the next
        # horse meanwhile, so the next job does not wait for a fork. Trivial jobs are over
        # before that, and forking beside them would only compete with them for the CPU.
        started = time.monotonic()
        spare_at = started + SPARE_AFTER if self._spare is None else math.inf
        outcome = None
        while outcome is None:
            if self.stop.count > 1:
                return horse.kill(WorkerStopped("the worker was stopped by force mid-job"))
            self.duties.tick(quiet=True)
            if time.monotonic() >= spare_at:
                spare_at = math.inf
                if self.stop.count == 0:
                    self._spare = Horse.prefork(self.handlers)
            wait = min(self.duties.until_due(), max(0.0, spare_at - time.monotonic()))
            outcome = horse.wait(wait, self.stop.wakeup_fd)
        # The horse reported and is exiting. After a trivial job, when every CPU is busy, let
        # it finish before going on: whatever memory the worker writes while the horse lives
        # is copied first (copy-on-write), about 10% more CPU per job. With a CPU free, the
        # horse's exit runs there while the worker claims the next job (about 20% more jobs
        # per second for a lone worker). After a longer job the worker has copied what it
        # writes already, and waiting would only delay the next job.
        trivial = time.monotonic() - started < SPARE_AFTER
        if not horse.reap(wait=REAP_WITHIN if trivial and not _cpu_free() else 0.0):
            self._exiting.append(horse)
        return outcome

    def _collapse_heap(self) -> None:
        """Back the worker's heap with huge pages before its first fork (``PQ_HUGE_PAGES``),
        and again every COLLAPSE_EVERY jobs: what the worker writes while a horse lives
        splits huge pages back into small ones. Fewer, larger pages make each fork and
        each horse's exit cheaper (see pq.hugepages)."""
        if self._jobs_to_collapse <= 0 and conf.huge_pages():
            collapsed = hugepages.collapse_heap()
            logger.debug(
                "Worker %s: %d MiB of heap in huge pages", self.worker_name, collapsed >> 20
            )
            self._jobs_to_collapse = COLLAPSE_EVERY

    def _horse_for(self, job: Job, timeout: int, func: Any) -> Horse:
        """Hand ``job`` to the spare horse, or fork a horse with it when there is no spare,
        the spare died while idle, or the job does not pickle to be handed over."""
        horse, self._spare = self._spare, None
        if horse is not None:
            try:
                if horse.dispatch(job, timeout):
                    return horse
            except Exception as exc:  # dispatch dismissed the horse
                logger.debug("Job %s does not pickle (%s); forking a horse with it", job.pk, exc)
            horse.reap(wait=math.inf)
        return Horse.start(job, timeout, self.handlers, func)


class InProcessExecutor(Executor):
    """Run each job in the worker's own process and thread (cheaper, for trusted jobs).

    SIGALRM raises JobTimeoutException in the job at its timeout, when the worker's signals
    are its own (it runs in the main thread). A thread sends the worker's heartbeats while a
    job runs (the job does not use the worker's connection); it is done with the connection
    before the worker uses it again.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._heartbeats: _JobHeartbeats | None = None
        self._running = False

    def interrupt(self) -> None:
        """Raise WorkerStopped in the job running, if one is."""
        if self._running:
            raise WorkerStopped("the worker was stopped by force mid-job")

    def close(self) -> None:
        """Stop the heartbeat thread."""
        if self._heartbeats is not None:
            self._heartbeats.close()
            self._heartbeats = None

    def _run(self, job: Job, timeout: int) -> Outcome:
        func = self._preload(job)
        if self._heartbeats is None:
            self._heartbeats = _JobHeartbeats(self.duties.beat_during_job, self.duties.interval)
        self._heartbeats.job_started()
        try:
            with _alarm(timeout, self.stop.installed):
                self._running = True
                try:
                    return perform(job, self.handlers, func)
                finally:
                    self._running = False
        finally:
            self._heartbeats.job_ended()


@contextmanager
def _alarm(timeout: int, armed: bool) -> Iterator[None]:
    """Raise JobTimeoutException in this thread once ``timeout`` seconds have passed (SIGALRM),
    when ``armed``; restore the previous SIGALRM handler on leaving."""
    if not armed:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise JobTimeoutException(
            f"Job exceeded its timeout of {timeout} seconds and was interrupted"
        )

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _JobHeartbeats:
    """One thread, for the worker's life, calling ``beat`` while a job runs in the worker's
    own thread: every ``interval`` / 2 seconds (``beat`` sends a heartbeat when one is due).

    A thread per job cost more than the jobs themselves for cheap ones (a third of a
    non-forking worker's time). The lock keeps the connection to one thread: a beat under
    way when the job ends is finished before :meth:`job_ended` returns.
    """

    def __init__(self, beat: Callable[[], None], interval: float) -> None:
        self._beat = beat
        self._interval = interval
        self._lock = threading.Lock()
        self._job_running = False
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pq-heartbeat", daemon=True)
        self._thread.start()

    def job_started(self) -> None:
        with self._lock:
            self._job_running = True

    def job_ended(self) -> None:
        with self._lock:
            self._job_running = False

    def close(self) -> None:
        """Stop the thread and wait for it."""
        self._closed.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._closed.wait(self._interval / 2):
            with self._lock:
                if not self._job_running:
                    continue
                try:
                    self._beat()
                except Exception:
                    logger.exception("Sending a heartbeat during a job failed")


def _cpu_free(more: int = 0) -> bool:
    """Whether a CPU is free, and ``more`` besides: no more tasks runnable, this one
    included, than this process may use CPUs, less ``more`` (Linux's /proc/loadavg; False
    where it cannot tell)."""
    try:
        with open("/proc/loadavg", "rb") as loadavg:
            runnable = int(loadavg.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return False
    return runnable + more <= _CPUS


_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
