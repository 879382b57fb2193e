"""The worker: one long-lived database connection, a loop around ``pq_dequeue``, a horse per job.

The loop composes: a :class:`~pq.ledger.Ledger` of the jobs it holds, an executor that runs
them (:mod:`pq.executors`: a forked horse per job, or the worker's own process for a
:class:`SimpleWorker`), the :class:`~pq.duties.Duties` kept between and during jobs, and the
:class:`StopRequests` that signals and the stop flag make.
"""

from __future__ import annotations

import inspect
import logging
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from pq import conf, sql
from pq.connection import connect as connect_raw
from pq.connection import meanwhile
from pq.duties import CONNECTION_ERRORS, Duties
from pq.exceptions import WorkerNotRegistered
from pq.executors import Executor, ForkingExecutor, InProcessExecutor
from pq.horse import ExcHandler, Outcome, drain, run_handlers
from pq.identity import WorkerIdentity
from pq.ledger import Ledger, log_notices
from pq.models import Job, UndecodableJob
from pq.queue import Queue
from pq.reusable import ReusingExecutor
from pq.worker_queues import WorkerQueues

logger = logging.getLogger("pq")


class Worker:
    """Work on queues in priority order, forking a work horse per job.

    ``Worker(..., fork=False)`` is a :class:`SimpleWorker`, running jobs in its own process,
    which alone takes ``batch`` > 1 (jobs claimed, and their results stored, per database call).
    ``horse_jobs`` > 1 (forking workers only) lets each forked horse run up to that many jobs,
    one at a time, before it is replaced (see :mod:`pq.reusable`).

    ``queues`` are Queue objects or names on one database connection; with none, the worker
    serves every queue but ``failed`` (in name order, newly created queues included).
    ``exc_handler`` is pushed on the exception handler chain (see :meth:`push_exc_handler`).
    """

    fork = True  # whether jobs run in forked horses; fork=None (the default) means as the class
    executor_class: type[Executor] = ForkingExecutor

    def __new__(cls, *args: Any, **kwargs: Any) -> Worker:
        """Make ``Worker(..., fork=False)`` a SimpleWorker."""
        if cls is Worker:
            chosen = inspect.signature(cls.__init__).bind_partial(None, *args, **kwargs)
            if chosen.arguments.get("fork") is False:
                cls = SimpleWorker
        return super().__new__(cls)

    def __init__(
        self,
        queues: Queue | str | Iterable[Queue | str] | None = None,
        name: str | None = None,
        connection: str | None = None,
        exc_handler: ExcHandler | None = None,
        default_worker_ttl: int | None = None,
        heartbeat_interval: float = 10.0,
        default_result_ttl: int | None = None,
        fork: bool | None = None,
        batch: int = 1,
        horse_jobs: int = 1,
    ) -> None:
        if fork is not None and fork != self.fork:
            raise ValueError(f"{type(self).__name__} takes fork={self.fork}, got fork={fork}")
        if type(batch) is not int or batch < 1:
            raise ValueError(f"batch must be a whole number of at least 1, got {batch!r}")
        if batch > 1 and self.fork:
            raise ValueError(
                "batch > 1 needs fork=False: a forking worker runs one job per work horse"
            )
        if type(horse_jobs) is not int or horse_jobs < 1:
            raise ValueError(f"horse_jobs must be a whole number of at least 1, got {horse_jobs!r}")
        if horse_jobs > 1 and not self.fork:
            raise ValueError("horse_jobs > 1 needs a forking worker: fork=False runs no horse")
        self.queues = WorkerQueues(queues, connection)
        self.connection = self.queues.connection
        self.identity = WorkerIdentity(name)
        self.name = self.identity.name
        self.default_worker_ttl = default_worker_ttl or conf.default_worker_ttl()
        self.default_result_ttl = (
            conf.default_result_ttl() if default_result_ttl is None else default_result_ttl
        )
        self.heartbeat_interval = heartbeat_interval
        self.default_job_timeout = conf.default_job_timeout()
        self.batch = batch
        self._exc_handlers: list[ExcHandler] = []
        if exc_handler is not None:
            self.push_exc_handler(exc_handler)
        self._conn: Any = None
        self._stop = StopRequests()
        self._duties = Duties(
            self.name, heartbeat_interval, self._cursor, self._register, self._stop.flag
        )
        self._ledger = Ledger(self.name)
        executor_args = (
            self.name, self._exc_handlers, self.default_job_timeout, self._duties, self._stop
        )  # fmt: skip
        if horse_jobs > 1:
            self._executor: Executor = ReusingExecutor(*executor_args, horse_jobs=horse_jobs)
        else:
            self._executor = self.executor_class(*executor_args)
        self.horse_jobs = horse_jobs
        self.jobs_done = 0

    @classmethod
    def create(
        cls,
        queues: Queue | str | Iterable[Queue | str] | None = None,
        name: str | None = None,
        connection: str | None = None,
        exc_handler: ExcHandler | None = None,
        **options: Any,
    ) -> Worker:
        """Return a Worker (as RQ's ``Worker.create``)."""
        return cls(queues, name=name, connection=connection, exc_handler=exc_handler, **options)

    def push_exc_handler(self, handler: ExcHandler) -> None:
        """Add ``handler(job, exc_type, exc_value, traceback)`` to the top of the chain."""
        self._exc_handlers.append(handler)

    def pop_exc_handler(self) -> ExcHandler:
        """Remove and return the newest exception handler."""
        return self._exc_handlers.pop()

    def __repr__(self) -> str:
        return f"<Worker {self.name} on {self.queues.label()}>"

    # The loop

    def work(self, burst: bool = False) -> bool:
        """Work until stopped (SIGTERM/SIGINT, or the admin's stop flag); with ``burst``, until
        no job is left. Returns whether any job was done."""
        self._stop.install(self._executor.interrupt)
        try:
            self._connect()
            logger.info("*** Listening for work on %s", self.queues.label())
            while self._stop.count == 0:
                if not self._step(burst):
                    break
        finally:
            self._shutdown()
        return self.jobs_done > 0

    def _step(self, burst: bool) -> bool:
        """Run the claimed jobs, or claim more, or wait; return False when it is time to stop."""
        ledger = self._ledger
        try:
            ledger.store_failures(self._conn)
            self._duties.tick()
            if not ledger.claimed:
                self._claim()
                if not ledger.claimed:
                    if ledger.failed:  # every row claimed was rejected: claim again
                        return True
                    if burst:
                        self._duties.maintain()  # a burst leaves no result past its TTL behind
                        return False
                    if self._duties.heartbeat() is True:
                        return False
                    self._wait_for_work()
                    return True
            while ledger.claimed and self._stop.count == 0:
                self._execute(ledger.claimed[0])  # held as claimed until its outcome is
                ledger.claimed.pop(0)
                ledger.store_failures(self._conn)
                self._duties.tick(quiet=True)
            logger.info("*** Listening for work on %s", self.queues.label())
        except CONNECTION_ERRORS as exc:
            logger.warning(
                "Worker %s lost its database connection (%s); reconnecting", self.name, exc
            )
            self._reconnect()
        return True

    def _claim(self) -> None:
        """Store the results of done jobs and claim the next ones, in one call.

        A claimed row that does not decode is failed as that job (see :meth:`_reject`).
        Notifications received until now are dropped: the claim answers them.
        """
        self._conn.notifies.clear()
        try:
            rows = self._finish_dequeue()
        except WorkerNotRegistered:  # reaped while alive: register again, then claim
            logger.warning("Worker %s was not registered any more; registering again", self.name)
            self._conn.notices.clear()  # said of a call rolled back; the retry says it again
            self._register()
            rows = self._finish_dequeue()
        self._ledger.results_stored()
        self._log_notices()
        rows.sort(key=self.queues.claim_order())
        claimed = self._ledger.claimed = []
        for row in rows:
            try:
                job = Job.from_row(row, using=self.connection, jsonb_text=True)
            except UndecodableJob as exc:
                self._reject(row["id"], exc)
            else:
                claimed.append(job)

    def _finish_dequeue(self) -> list[dict[str, Any]]:
        with meanwhile(self._executor.meanwhile()):
            return sql.finish_dequeue(
                self._cursor(),
                self._ledger.done,
                self.name,
                self.default_result_ttl,
                self.queues.for_sql(),
                self.batch,
            )

    def _reject(self, job_id: int, reason: UndecodableJob) -> None:
        """Fail a job the worker cannot decode or describe, without running it.

        The exception handlers are not called: there is no job to hand them.
        """
        logger.error("Job %s cannot be run: %s", job_id, reason)
        self.jobs_done += 1
        self._ledger.record(job_id, Outcome(False, exc_info=f"UndecodableJob: {reason}"))

    def _execute(self, job: Job) -> None:
        """Run ``job`` with the executor and record its outcome."""
        try:
            description = job.checked_description()
        except UndecodableJob as exc:
            self._reject(job.pk, exc)
            return
        logger.info("Got %s from %s", description, job.origin)
        outcome = self._executor.execute(job)
        if outcome.error is not None:
            logger.error("Job %s %s failed: %s", job.pk, description, outcome.exc_info)
            error = outcome.error
            outcome.move_to_failed = run_handlers(
                self._exc_handlers, job, (type(error), error, None)
            )
            outcome.retry = job.may_retry
        self.jobs_done += 1
        self._ledger.record(job.pk, outcome)

    def _log_notices(self) -> None:
        log_notices(self._conn, self.name)

    # Waiting

    def _wait_for_work(self) -> None:
        """Block until a notification for one of our queues, a signal, a due job or a poll."""
        self._executor.idle()
        conn = self._conn
        wakeup_fd = self._stop.wakeup_fd
        deadline = time.monotonic() + self.default_worker_ttl
        due = self._next_due()
        if due is not None:
            seconds = (due - datetime.now(UTC)).total_seconds()
            deadline = min(deadline, time.monotonic() + max(0.0, seconds))
        while self._stop.count == 0:
            if self._take_notifies():
                return
            now = time.monotonic()
            if now >= deadline:
                return
            wait = min(deadline - now, self._duties.until_due())
            watched = [conn, wakeup_fd] if wakeup_fd >= 0 else [conn]
            ready, _, _ = select.select(watched, [], [], wait)
            if wakeup_fd in ready:
                drain(wakeup_fd)
            if conn in ready:
                conn.poll()
            if self._duties.tick(quiet=True) is True:
                return

    def _next_due(self) -> datetime | None:
        """Return when the next scheduled job is due; None for a time Python cannot hold.

        A ``scheduled_for`` past year 9999 cannot be a datetime: such a job is not due for
        ages, so the worker waits as if none were scheduled.
        """
        try:
            return sql.next_due(self._cursor(), self.queues.for_sql())
        except (psycopg2.DataError, ValueError, OverflowError) as exc:
            logger.warning(
                "pq_next_due returned a time Python cannot hold (%s); waiting as if no "
                "scheduled job were due",
                exc,
            )
            return None

    def _take_notifies(self) -> bool:
        """Consume pending notifications; True if one concerns our queues (or all workers)."""
        notifies = list(self._conn.notifies)
        self._conn.notifies.clear()
        return any(self.queues.wanted(notify.payload) for notify in notifies)

    # Connection

    def _connect(self) -> None:
        conn = connect_raw(self.connection)
        try:
            conn.set_session(autocommit=True)
            # jsonb comes as text, decoded per job: a row too deep for json.loads must fail
            # that job alone, not the fetch of the whole claimed batch.
            psycopg2.extras.register_default_jsonb(conn, loads=lambda text: text)
            # Refuse SQL of another version with a message (migrate, or update the worker)
            # rather than failing on the first job.
            sql.check_schema_version(conn.cursor(), self.connection)
            self._conn = conn
            sql.listen(conn.cursor())
            self._register()
        except BaseException:
            self._conn = None  # not registered: shutting down must not unregister the name
            conn.close()
            raise

    def _register(self) -> None:
        """Register (again, after a reconnect), keeping the jobs the ledger holds."""
        ttl = self._duties.ttl
        self.identity.register(self._cursor(), self.queues.for_sql(), ttl, self._ledger.held())
        self._duties.registered()

    def _reconnect(self) -> None:
        """Reconnect with backoff (0.5 s doubling to 30 s) until it works or we are stopped."""
        delay = 0.5
        while True:
            self._close()
            try:
                self._connect()
            except CONNECTION_ERRORS as exc:
                if self._stop.count:
                    raise
                logger.warning("Reconnecting failed (%s); next try in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            logger.info("Worker %s reconnected", self.name)
            return

    def _cursor(self) -> Any:
        return self._conn.cursor()

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg2.Error:
                pass
            self._conn = None

    def _shutdown(self) -> None:
        """Store or release every job held, unregister, and give back the signals."""
        try:
            if self._conn is not None and not self._conn.closed:
                self._ledger.flush(self._conn, self.default_result_ttl)
                sql.unregister_worker(self._cursor(), self.name)
                self._log_notices()
        except CONNECTION_ERRORS as exc:
            logger.warning("Worker %s could not unregister (%s)", self.name, exc)
        finally:
            self._executor.close()
            self._close()
            self._stop.restore()
        logger.info("Worker %s stopped after %d job(s)", self.name, self.jobs_done)


class SimpleWorker(Worker):
    """Work on queues in priority order, running each job in the worker's own process.

    As RQ's SimpleWorker: cheaper than a horse per job, for trusted jobs; a timeout is raised
    inside the job by SIGALRM. ``batch`` jobs are claimed, and their results stored, per
    database call.
    """

    fork = False
    executor_class = InProcessExecutor


class StopRequests:
    """Count the requests to stop a worker: SIGTERM/SIGINT, or its stop flag read by a heartbeat.

    The first stops it after the current job; a second signal stops it at once (``force``,
    given to :meth:`install`, ends a job running in the worker's thread; a horse is killed by
    the executor watching it). A signal also wakes the worker: ``wakeup_fd`` becomes readable
    (-1 when the signals are not the worker's).
    """

    def __init__(self) -> None:
        self.count = 0
        self.wakeup_fd = -1
        self._wakeup_write = self._old_wakeup = -1
        self._old_handlers: dict[int, Any] = {}
        self._force: Callable[[], None] = _nothing

    @property
    def installed(self) -> bool:
        """Whether the signals are the worker's (it runs in the main thread)."""
        return self._old_handlers != {}

    def flag(self) -> None:
        """Count the stop flag as a request to stop after the current job."""
        self.count = max(self.count, 1)

    def install(self, force: Callable[[], None]) -> None:
        """Handle SIGTERM and SIGINT, and wake the worker on a signal, in the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach only the main thread: stop a worker in a thread with its flag
        self._force = force
        self.wakeup_fd, wakeup_write = os.pipe()
        os.set_blocking(self.wakeup_fd, False)
        os.set_blocking(wakeup_write, False)
        self._wakeup_write = wakeup_write
        self._old_wakeup = signal.set_wakeup_fd(wakeup_write)
        self._old_handlers = {
            signum: signal.signal(signum, self._request)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }

    def restore(self) -> None:
        """Give the signals back to the handlers they had before :meth:`install`."""
        if not self._old_handlers:
            return
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        self._old_handlers = {}
        signal.set_wakeup_fd(self._old_wakeup)
        os.close(self.wakeup_fd)
        os.close(self._wakeup_write)
        self.wakeup_fd = self._wakeup_write = -1

    def _request(self, signum: int, frame: Any) -> None:
        self.count += 1
        name = signal.Signals(signum).name
        if self.count == 1:
            # A warm stop is routine (a deploy, systemd stopping the service): INFO, as RQ logs
            # its warm shut-down; a forced one kills a job, so it warns.
            logger.info("Got %s: stopping after the current job (again: stop now)", name)
        else:
            logger.warning("Got %s again: killing the current job and stopping", name)
            self._force()


def _nothing() -> None:
    pass
