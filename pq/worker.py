"""The worker: one long-lived database connection, a loop around ``pq_dequeue``, a horse per job."""

from __future__ import annotations

import logging
import math
import os
import secrets
import select
import signal
import socket
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
from pq.duties import CONNECTION_ERRORS, Duties
from pq.exceptions import (
    JobTimeoutException,
    WorkerNameTaken,
    WorkerNotRegistered,
    WorkerStopped,
)
from pq.horse import ExcHandler, Horse, Outcome, drain, perform, run_handlers
from pq.models import Job, UndecodableJob
from pq.queue import FAILED_QUEUE, Queue
from pq.serialization import import_callable

logger = logging.getLogger("pq")

SPARE_AFTER = 0.05  # seconds a job runs before its worker forks the next horse beside it
REAP_WITHIN = 1.0  # seconds a worker waits for a horse that reported to exit


class Worker:
    """Work on queues in priority order, forking a work horse per job.

    With ``fork=False`` jobs run in the worker's own process (as RQ's SimpleWorker: cheaper,
    for trusted jobs; a timeout is raised inside the job by SIGALRM), and ``batch`` jobs are
    claimed, and their results stored, per database call.

    ``queues`` are Queue objects or names on one database connection; with none, the worker
    serves every queue but ``failed`` (in name order, newly created queues included).
    ``exc_handler`` is pushed on the exception handler chain (see :meth:`push_exc_handler`).
    """

    def __init__(
        self,
        queues: Queue | str | Iterable[Queue | str] | None = None,
        name: str | None = None,
        connection: str | None = None,
        exc_handler: ExcHandler | None = None,
        default_worker_ttl: int | None = None,
        heartbeat_interval: float = 10.0,
        default_result_ttl: int | None = None,
        fork: bool = True,
        batch: int = 1,
    ) -> None:
        if type(batch) is not int or batch < 1:
            raise ValueError(f"batch must be a whole number of at least 1, got {batch!r}")
        if batch > 1 and fork:
            raise ValueError(
                "batch > 1 needs fork=False: a forking worker runs one job per work horse"
            )
        if isinstance(queues, (Queue, str)):
            queues = [queues]
        given = list(queues or [])
        aliases = {q.connection for q in given if isinstance(q, Queue)}
        if connection is None:
            connection = aliases.pop() if len(aliases) == 1 else "default"
        if aliases - {connection}:
            raise ValueError(
                f"a worker works on queues of one connection; got queues on {sorted(aliases)} "
                f"for a worker on {connection!r}: start one worker per connection"
            )
        self.connection = connection
        self.queue_names = [q.name if isinstance(q, Queue) else q for q in given]
        if FAILED_QUEUE in self.queue_names:
            raise ValueError("workers do not work on the failed queue; requeue its jobs instead")
        self.all_queues = not self.queue_names
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.name = name or f"{self.hostname}.{self.pid}"
        # Tells this process apart from an earlier one with the same name, host and pid (a
        # container restarted within the heartbeat TTL): its registration is a reconnect of
        # this process only with this token.
        self.token = secrets.token_hex(16)
        self.default_worker_ttl = default_worker_ttl or conf.default_worker_ttl()
        self.default_result_ttl = (
            conf.default_result_ttl() if default_result_ttl is None else default_result_ttl
        )
        self.heartbeat_interval = heartbeat_interval
        self.default_job_timeout = conf.default_job_timeout()
        self.fork = fork
        self.batch = batch
        self._exc_handlers: list[ExcHandler] = []
        if exc_handler is not None:
            self.push_exc_handler(exc_handler)
        self._conn: Any = None
        self._stop_requests = 0
        self._wakeup_read = self._wakeup_write = self._old_wakeup = -1
        self._old_handlers: dict[int, Any] = {}
        self._job_heartbeats: _JobHeartbeats | None = None  # --simple: beats during jobs
        self._duties = Duties(
            self.name, heartbeat_interval, self._cursor, self._register, self._stop_by_flag
        )
        # Jobs claimed and not run yet; results of jobs done and not stored yet (they are
        # stored with the next claim, in the same call); failures not stored yet (several
        # when rows of one claimed batch do not decode), each as (job id, outcome).
        self._claimed: list[Job] = []
        self._done: list[tuple[int, Any]] = []
        self._failures: list[tuple[int, Outcome]] = []
        self._running_inline = False
        self._exiting: list[Horse] = []
        self._spare: Horse | None = None  # forked while idle, so a job starts without a fork
        self._callables: dict[str, Any] = {}
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
        return f"<Worker {self.name} on {', '.join(self.queue_names) or 'all queues'}>"

    # The loop

    def work(self, burst: bool = False) -> bool:
        """Work until stopped (SIGTERM/SIGINT, or the admin's stop flag); with ``burst``, until
        no job is left. Returns whether any job was done."""
        self._install_signal_handlers()
        try:
            self._connect()
            logger.info("*** Listening for work on %s", self._queue_label())
            while self._stop_requests == 0:
                if not self._step(burst):
                    break
        finally:
            self._shutdown()
        return self.jobs_done > 0

    def _step(self, burst: bool) -> bool:
        """Run the claimed jobs, or claim more, or wait; return False when it is time to stop."""
        try:
            self._store_failures()
            self._duties.tick()
            if not self._claimed:
                self._claim()
                if not self._claimed:
                    if self._failures:  # every row claimed was rejected: claim again
                        return True
                    if burst:
                        self._duties.maintain()  # a burst leaves no result past its TTL behind
                        return False
                    if self._duties.heartbeat() is True:
                        return False
                    self._wait_for_work()
                    return True
            while self._claimed and self._stop_requests == 0:
                self._execute(self._claimed[0])
                self._claimed.pop(0)
                self._store_failures()
                self._duties.tick(quiet=True)
            logger.info("*** Listening for work on %s", self._queue_label())
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
        self._done = []
        self._log_notices()
        rows.sort(key=self._claim_order())
        self._claimed = []
        for row in rows:
            try:
                job = Job.from_row(row, using=self.connection, jsonb_text=True)
            except UndecodableJob as exc:
                self._reject(row["id"], exc)
            else:
                self._claimed.append(job)

    def _finish_dequeue(self) -> list[dict[str, Any]]:
        return sql.finish_dequeue(
            self._cursor(),
            self._done,
            self.name,
            self.default_result_ttl,
            self._queues(),
            self.batch,
        )

    def _claim_order(self) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
        """The order in which claimed rows run: the order the SQL claims them in (queues
        given in priority order, or every queue's due scheduled jobs first, then queues in
        name order), oldest first."""
        if self.all_queues:
            return lambda row: (
                (0, row["scheduled_for"], row["id"])
                if row["scheduled_for"] is not None
                else (1, row["queue"], row["id"])
            )
        priority = {name: index for index, name in enumerate(self.queue_names)}
        return lambda row: (priority.get(row["queue"], 0), row["id"])

    def _reject(self, job_id: int, reason: UndecodableJob) -> None:
        """Fail a job the worker cannot decode or describe, without running it.

        The exception handlers are not called: there is no job to hand them.
        """
        logger.error("Job %s cannot be run: %s", job_id, reason)
        self.jobs_done += 1
        self._failures.append((job_id, Outcome(False, exc_info=f"UndecodableJob: {reason}")))

    def _execute(self, job: Job) -> None:
        """Run ``job`` (in a horse, or here) and record its outcome."""
        try:
            description = job.checked_description()
        except UndecodableJob as exc:
            self._reject(job.pk, exc)
            return
        logger.info("Got %s from %s", description, job.origin)
        outcome = self._run(job)
        if outcome.error is not None:
            logger.error("Job %s %s failed: %s", job.pk, description, outcome.exc_info)
            error = outcome.error
            outcome.move_to_failed = run_handlers(
                self._exc_handlers, job, (type(error), error, None)
            )
        self.jobs_done += 1
        if outcome.ok:
            self._done.append((job.pk, outcome.result))
        else:
            self._failures.append((job.pk, outcome))

    def _run(self, job: Job) -> Outcome:
        """Run ``job`` in a horse, or here; what keeps the worker from running it (e.g. a fork
        that fails) is the job's failure. Database errors are the loop's to handle."""
        timeout = job.timeout or self.default_job_timeout
        try:
            if self.fork:
                return self._run_in_horse(job, timeout)
            return self._run_here(job, timeout)
        except psycopg2.Error:
            raise
        except Exception as exc:
            logger.exception("Worker %s could not run job %s", self.name, job.pk)
            return Outcome.failure(exc)

    def _run_in_horse(self, job: Job, timeout: int) -> Outcome:
        self._exiting = [horse for horse in self._exiting if not horse.reap()]
        horse = self._horse_for(job, timeout, self._preload(job))
        # A job still running after SPARE_AFTER seconds is not a trivial one: fork the next
        # horse meanwhile, so the next job does not wait for a fork. Trivial jobs are over
        # before that, and forking beside them would only compete with them for the CPU.
        started = time.monotonic()
        spare_at = started + SPARE_AFTER if self._spare is None else math.inf
        outcome = None
        while outcome is None:
            if self._stop_requests > 1:
                return horse.kill(WorkerStopped("the worker was stopped by force mid-job"))
            self._duties.tick(quiet=True)
            if time.monotonic() >= spare_at:
                spare_at = math.inf
                if self._stop_requests == 0:
                    self._spare = Horse.prefork(self._exc_handlers)
            wait = min(self._duties.until_due(), max(0.0, spare_at - time.monotonic()))
            outcome = horse.wait(wait, self._wakeup_read)
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
        return Horse.start(job, timeout, self._exc_handlers, func)

    def _preload(self, job: Job) -> Any:
        """Import the job's function in the worker, so that every horse inherits it imported.

        Returns None (the horse then imports it, and reports any error as the job's failure)
        for an instance method or a function that cannot be imported.
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

    def _run_here(self, job: Job, timeout: int) -> Outcome:
        """Run ``job`` in this process; SIGALRM raises JobTimeoutException in it at its timeout.

        A thread sends the worker's heartbeats meanwhile (the job does not use the worker's
        connection); it is done with the connection before this thread uses it again.
        """
        func = self._preload(job)
        if self._job_heartbeats is None:
            duties = self._duties
            self._job_heartbeats = _JobHeartbeats(duties.beat_during_job, duties.interval)
        self._job_heartbeats.job_started()
        try:
            timed = self._old_handlers != {}  # signals are ours: we run in the main thread
            if timed:
                previous = signal.signal(signal.SIGALRM, _raise_timeout(timeout))
                signal.setitimer(signal.ITIMER_REAL, timeout)
            self._running_inline = True
            try:
                return perform(job, self._exc_handlers, func)
            finally:
                self._running_inline = False
                if timed:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    signal.signal(signal.SIGALRM, previous)
        finally:
            self._job_heartbeats.job_ended()

    def _store_failures(self) -> None:
        """Store the failures not stored yet, one by one (after a reconnect: those left)."""
        while self._failures:
            job_id, outcome = self._failures[0]
            stored = sql.fail(
                self._cursor(), job_id, self.name, outcome.exc_info, outcome.move_to_failed
            )
            self._failures.pop(0)
            self._log_notices()
            if not stored:
                logger.warning(
                    "Job %s was no longer started by worker %s when it ended (it was failed "
                    "as abandoned or removed meanwhile); its outcome was not stored",
                    job_id,
                    self.name,
                )

    def _log_notices(self) -> None:
        """Log, as warnings, the notices PostgreSQL sent the worker's connection (e.g. an
        outcome the SQL could not store), and forget them."""
        notices = self._conn.notices
        for notice in notices:
            logger.warning("Worker %s: PostgreSQL said: %s", self.name, notice.strip())
        notices.clear()

    # Waiting

    def _wait_for_work(self) -> None:
        """Block until a notification for one of our queues, a signal, a due job or a poll."""
        if self.fork and self._spare is None:
            self._spare = Horse.prefork(self._exc_handlers)
        conn = self._conn
        deadline = time.monotonic() + self.default_worker_ttl
        due = self._next_due()
        if due is not None:
            seconds = (due - datetime.now(UTC)).total_seconds()
            deadline = min(deadline, time.monotonic() + max(0.0, seconds))
        while self._stop_requests == 0:
            if self._take_notifies():
                return
            now = time.monotonic()
            if now >= deadline:
                return
            wait = min(deadline - now, self._duties.until_due())
            watched = [conn, self._wakeup_read] if self._wakeup_read >= 0 else [conn]
            ready, _, _ = select.select(watched, [], [], wait)
            if self._wakeup_read in ready:
                drain(self._wakeup_read)
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
            return sql.next_due(self._cursor(), self._queues())
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
        for notify in notifies:
            if notify.payload == "" or notify.payload in self.queue_names:
                return True
            if self.all_queues and notify.payload != FAILED_QUEUE:
                return True
        return False

    # Connection

    def _connect(self) -> None:
        conn = connect_raw(self.connection)
        try:
            conn.set_session(autocommit=True)
            # jsonb comes as text, decoded per job: a row too deep for json.loads must fail
            # that job alone, not the fetch of the whole claimed batch.
            psycopg2.extras.register_default_jsonb(conn, loads=lambda text: text)
            self._conn = conn
            sql.listen(conn.cursor())
            self._register()
        except BaseException:
            self._conn = None  # not registered: shutting down must not unregister the name
            conn.close()
            raise

    def _register(self) -> None:
        keep = [job.pk for job in self._claimed] + [job_id for job_id, _ in self._done]
        keep += [job_id for job_id, _ in self._failures]
        args = (self.name, self._queues(), self._duties.ttl, self.hostname, self.pid, keep)
        try:
            sql.register_worker(self._cursor(), *args, token=self.token)
        except WorkerNameTaken:
            if not self._take_over_dead_namesake():
                raise
            sql.register_worker(self._cursor(), *args, token=self.token)
        self._duties.registered()

    def _take_over_dead_namesake(self) -> bool:
        """Unregister the worker holding our name if it ran on this host and its process is
        dead (a worker restarted with a fixed name right after a kill -9); its started jobs
        are failed as abandoned. Return whether it was taken over. (A holder with our own pid
        and another token, a container restarted as pid 1, is replaced by the SQL itself.)"""
        holder = sql.worker_host(self._cursor(), self.name)
        if holder is None or holder[0] != self.hostname or holder[1] in (None, self.pid):
            return False
        if _pid_alive(holder[1]):
            return False
        logger.warning(
            "Worker name %s was held by process %s of this host, which is dead: taking the "
            "name over; its started jobs are failed as abandoned",
            self.name,
            holder[1],
        )
        sql.unregister_worker(self._cursor(), self.name)
        return True

    def _reconnect(self) -> None:
        """Reconnect with backoff (0.5 s doubling to 30 s) until it works or we are stopped."""
        delay = 0.5
        while True:
            self._close()
            try:
                self._connect()
            except CONNECTION_ERRORS as exc:
                if self._stop_requests:
                    raise
                logger.warning("Reconnecting failed (%s); next try in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            logger.info("Worker %s reconnected", self.name)
            return

    def _cursor(self) -> Any:
        return self._conn.cursor()

    def _queues(self) -> list[str] | None:
        """The queue names the SQL works on: those given, or None for every queue but failed
        (claimed in one statement, however many queues exist)."""
        return None if self.all_queues else self.queue_names

    def _queue_label(self) -> str:
        return ", ".join(self.queue_names) or "all queues"

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg2.Error:
                pass
            self._conn = None

    def _shutdown(self) -> None:
        try:
            if self._conn is not None and not self._conn.closed:
                self._store_failures()
                if self._done:
                    sql.finish_many(self._cursor(), self._done, self.name, self.default_result_ttl)
                    self._done = []
                if self._claimed:
                    sql.release(self._cursor(), [job.pk for job in self._claimed], self.name)
                    self._claimed = []
                sql.unregister_worker(self._cursor(), self.name)
                self._log_notices()
        except CONNECTION_ERRORS as exc:
            logger.warning("Worker %s could not unregister (%s)", self.name, exc)
        finally:
            if self._job_heartbeats is not None:
                self._job_heartbeats.close()
                self._job_heartbeats = None
            if self._spare is not None:
                self._spare.dismiss()
                self._spare = None
            for horse in self._exiting:
                horse.reap(wait=math.inf)
            self._exiting = []
            self._close()
            self._restore_signal_handlers()
        logger.info("Worker %s stopped after %d job(s)", self.name, self.jobs_done)

    # Signals

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach only the main thread: stop a worker in a thread with its flag
        self._wakeup_read, wakeup_write = os.pipe()
        os.set_blocking(self._wakeup_read, False)
        os.set_blocking(wakeup_write, False)
        self._wakeup_write = wakeup_write
        self._old_wakeup = signal.set_wakeup_fd(wakeup_write)
        self._old_handlers = {
            signum: signal.signal(signum, self._request_stop)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }

    def _restore_signal_handlers(self) -> None:
        if not self._old_handlers:
            return
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        self._old_handlers = {}
        signal.set_wakeup_fd(self._old_wakeup)
        os.close(self._wakeup_read)
        os.close(self._wakeup_write)
        self._wakeup_read = self._wakeup_write = -1

    def _stop_by_flag(self) -> None:
        self._stop_requests = max(self._stop_requests, 1)

    def _request_stop(self, signum: int, frame: Any) -> None:
        self._stop_requests += 1
        name = signal.Signals(signum).name
        if self._stop_requests == 1:
            logger.warning("Got %s: stopping after the current job (again: stop now)", name)
        else:
            logger.warning("Got %s again: killing the current job and stopping", name)
            if self._running_inline:
                raise WorkerStopped("the worker was stopped by force mid-job")


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


def _pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cpu_free() -> bool:
    """Whether a CPU is free: no more tasks runnable, this one included, than this process
    may use CPUs (Linux's /proc/loadavg; False where it cannot tell)."""
    try:
        with open("/proc/loadavg", "rb") as loadavg:
            runnable = int(loadavg.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return False
    return runnable <= _CPUS


_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _raise_timeout(timeout: int) -> Any:
    def handler(signum: int, frame: Any) -> None:
        raise JobTimeoutException(
            f"Job exceeded its timeout of {timeout} seconds and was interrupted"
        )

    return handler
