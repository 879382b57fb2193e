"""Every call from Python into django-pq's SQL functions: the one module holding SQL text.

Each function takes a DB-API cursor (a Django cursor, so the call joins the caller's
transaction, or a worker's raw psycopg2 cursor), calls one SQL function with bound
parameters, and returns plain Python values. SQLSTATEs of class PQ raised by the SQL become
the exceptions of :mod:`pq.exceptions`. JSON goes over the wire as text cast to jsonb, so the
same calls work on psycopg2 and psycopg 3 cursors.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, time
from typing import Any, ParamSpec, TypedDict, TypeVar, Unpack

from pq.exceptions import SQLSTATE_ERRORS, SchemaVersionMismatch

Row = dict[str, Any]
# The version of the SQL this module calls: pq_version() of the latest SQL migration. A
# migration that changes the SQL bumps both.
SCHEMA_VERSION = 11
P = ParamSpec("P")
T = TypeVar("T")


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Re-raise a database error with a PQ SQLSTATE as its pq.exceptions class."""
    try:
        yield
    except Exception as exc:
        pg_error = exc if getattr(exc, "pgcode", None) else exc.__cause__
        code = getattr(pg_error, "pgcode", None) or getattr(pg_error, "sqlstate", None)
        error_class = SQLSTATE_ERRORS.get(code or "")
        if error_class is None:
            raise
        diag = getattr(pg_error, "diag", None)
        message = getattr(diag, "message_primary", None) or str(pg_error)
        hint = getattr(diag, "message_hint", None)
        raise error_class(f"{message} ({hint})" if hint else message) from exc


def _translated(func: Callable[P, T]) -> Callable[P, T]:
    """Run ``func`` under :func:`translate_errors`: every call raises pq's exceptions."""

    @functools.wraps(func)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        with translate_errors():
            return func(*args, **kwargs)

    return call


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, allow_nan=False)


def _one_row(cursor: Any) -> Row | None:
    row = cursor.fetchone()
    if row is None:
        return None
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def _all_rows(cursor: Any) -> list[Row]:
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class JobOptions(TypedDict, total=False):
    """The options of one job, as ``_pq_enqueue_job`` and ``_pq_flow_enqueue_job`` take them."""

    timeout: int | None
    result_ttl: int | None
    description: str | None
    scheduled_for: datetime | None
    instance: bytes | None
    priority: int
    max_retries: int
    retry_intervals: list[int] | None


def _insert_job(
    cursor: Any, query: str, target: Any, func: str, args: Any, kwargs: Any, options: JobOptions
) -> Row:
    """Run ``query`` (one of the two job-adding functions) with the job's arguments."""
    cursor.execute(
        query,
        [
            target,
            func,
            _json(args),
            _json(kwargs),
            options.get("timeout"),
            options.get("result_ttl"),
            options.get("description"),
            options.get("scheduled_for"),
            options.get("instance"),
            options.get("priority", 0),
            options.get("max_retries", 0),
            options.get("retry_intervals"),
        ],
    )
    row = _one_row(cursor)
    assert row is not None
    return row


@_translated
def enqueue_job(
    cursor: Any,
    queue: str,
    func: str,
    args: list[Any],
    kwargs: dict[str, Any],
    **options: Unpack[JobOptions],
) -> Row:
    """Enqueue a job with ``_pq_enqueue_job``; return what the database chose for it.

    The returned row holds ``id``, ``status`` (``queued`` or ``scheduled``), ``created_at``,
    ``enqueued_at`` and ``scheduled_for``. The rest of the new row is what the caller passed
    and the columns' defaults, so it is not sent back: decoding the whole row took about a
    fifth of ``q.enqueue``'s time (see :meth:`pq.models.Job.enqueued`).
    """
    return _insert_job(
        cursor,
        "SELECT id, status, created_at, enqueued_at, scheduled_for"
        " FROM _pq_enqueue_job(%s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s, %s,"
        " %s, %s, %s::integer[])",
        queue,
        func,
        args,
        kwargs,
        options,
    )


@_translated
def flow_create(cursor: Any, queue: str, name: str | None) -> int:
    """Make a flow on ``queue`` with ``pq_flow_create``; return its id."""
    cursor.execute("SELECT pq_flow_create(%s, %s)", [queue, name])
    return int(cursor.fetchone()[0])


@_translated
def flow_enqueue_job(
    cursor: Any,
    flow_id: int,
    func: str,
    args: list[Any],
    kwargs: dict[str, Any],
    **options: Unpack[JobOptions],
) -> Row:
    """Add a job to flow ``flow_id`` with ``_pq_flow_enqueue_job``; return what
    :func:`enqueue_job` returns, and the flow's ``queue`` and the ``depends_on`` job."""
    return _insert_job(
        cursor,
        "SELECT id, status, created_at, enqueued_at, scheduled_for, queue, origin, flow_id,"
        " depends_on"
        " FROM _pq_flow_enqueue_job(%s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s, %s,"
        " %s, %s, %s::integer[])",
        flow_id,
        func,
        args,
        kwargs,
        options,
    )


@_translated
def flow_start(cursor: Any, flow_id: int) -> int:
    """Start flow ``flow_id`` with ``pq_flow_start``; return its number of jobs."""
    cursor.execute("SELECT pq_flow_start(%s)", [flow_id])
    return int(cursor.fetchone()[0])


@_translated
def enqueue_many(
    cursor: Any,
    queue: str,
    funcs: Sequence[str],
    args: Sequence[list[Any]],
    kwargs: Sequence[dict[str, Any]],
    *,
    timeout: int | None = None,
    result_ttl: int | None = None,
    priority: int = 0,
    max_retries: int = 0,
    retry_intervals: list[int] | None = None,
) -> list[int]:
    """Enqueue a batch of jobs on ``queue`` with ``pq_enqueue_many``; return their ids in order."""
    cursor.execute(
        "SELECT * FROM pq_enqueue_many(%s, %s::text[], %s::jsonb[], %s::jsonb[], %s, %s, %s, %s,"
        " %s::integer[])",
        [
            queue,
            list(funcs),
            [_json(a) for a in args],
            [_json(k) for k in kwargs],
            timeout,
            result_ttl,
            priority,
            max_retries,
            retry_intervals,
        ],
    )
    return [job_id for (job_id,) in cursor.fetchall()]


@_translated
def schedule_job(
    cursor: Any,
    queue: str,
    func: str,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    scheduled_for: datetime,
    repeat: int = 0,
    repeat_until: datetime | None = None,
    repeat_interval: str | None = None,
    between_start: time | None = None,
    between_end: time | None = None,
    weekdays: Sequence[int] | None = None,
    time_zone: str | None = None,
    timeout: int | None = None,
    result_ttl: int | None = None,
    description: str | None = None,
    instance: bytes | None = None,
    name: str | None = None,
    priority: int = 0,
    max_retries: int = 0,
    retry_intervals: list[int] | None = None,
) -> int:
    """Schedule a job with ``_pq_schedule_job``; return its id.

    ``repeat_interval`` is PostgreSQL interval text (see :func:`pq.scheduling.interval_text`).
    """
    cursor.execute(
        "SELECT id FROM _pq_schedule_job(%s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s::interval,"
        " %s::time, %s::time, %s::integer[], %s, %s, %s, %s, %s, %s, %s, %s, %s::integer[])",
        [
            queue,
            func,
            _json(args),
            _json(kwargs),
            scheduled_for,
            repeat,
            repeat_until,
            repeat_interval,
            between_start,
            between_end,
            None if weekdays is None else list(weekdays),
            time_zone,
            timeout,
            result_ttl,
            description,
            instance,
            name,
            priority,
            max_retries,
            retry_intervals,
        ],
    )
    return int(cursor.fetchone()[0])


@_translated
def schedule_cron(
    cursor: Any,
    name: str,
    schedule: str,
    func: str,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    queue: str,
    time_zone: str,
    timeout: int | None = None,
    result_ttl: int | None = None,
    description: str | None = None,
    priority: int = 0,
    max_retries: int = 0,
    retry_intervals: list[int] | None = None,
) -> int:
    """Create or replace the cron schedule ``name`` with ``pq_schedule_cron``; return the id
    of its next tick's job."""
    cursor.execute(
        "SELECT pq_schedule_cron(%s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s, %s, %s, %s,"
        " %s::integer[])",
        [
            name,
            schedule,
            func,
            _json(args),
            _json(kwargs),
            queue,
            time_zone,
            timeout,
            result_ttl,
            description,
            priority,
            max_retries,
            retry_intervals,
        ],
    )
    return int(cursor.fetchone()[0])


@_translated
def unschedule(cursor: Any, name: str) -> bool:
    """Remove the named schedule with ``pq_unschedule``; False if there was none."""
    cursor.execute("SELECT pq_unschedule(%s)", [name])
    return bool(cursor.fetchone()[0])


@_translated
def schedules(cursor: Any) -> list[Row]:
    """Return the rows of the view ``pq_schedules``, by name."""
    cursor.execute(
        "SELECT name, schedule, time_zone, queue, func, next_run, next_job_id, last_job_id,"
        " last_status, last_run, priority, max_retries, retry_intervals FROM pq_schedules"
        " ORDER BY name"
    )
    return _all_rows(cursor)


@_translated
def cron_next(cursor: Any, expr: str, after: datetime, time_zone: str = "UTC") -> datetime:
    """Return the first tick of cron expression ``expr`` after ``after`` (``pq_cron_next``)."""
    cursor.execute("SELECT pq_cron_next(%s, %s, %s)", [expr, after, time_zone])
    return cursor.fetchone()[0]


@_translated
def create_queue(cursor: Any, queue: str, options: dict[str, Any]) -> None:
    """Create a queue or change its options with ``pq_create_queue``."""
    cursor.execute("SELECT pq_create_queue(%s, %s::jsonb)", [queue, _json(options)])


@_translated
def count_queued(cursor: Any, queue: str) -> int:
    """Return how many jobs wait in ``queue`` (queued now, or scheduled), with ``pq_count``."""
    cursor.execute("SELECT pq_count(%s)", [queue])
    return int(cursor.fetchone()[0])


@_translated
def empty_queue(cursor: Any, queue: str) -> int:
    """Delete the waiting jobs of ``queue`` with ``pq_empty_queue``; return how many."""
    cursor.execute("SELECT pq_empty_queue(%s)", [queue])
    return int(cursor.fetchone()[0])


def _queue_names(queues: Sequence[str] | None) -> list[str] | None:
    """The queue_names argument: None means every queue but failed."""
    return None if queues is None else list(queues)


@_translated
def dequeue(cursor: Any, queues: Sequence[str] | None, worker: str) -> Row | None:
    """Claim the next job of the first non-empty queue with ``pq_dequeue``; None if none.

    ``queues`` None means every queue but failed. Raises WorkerNotRegistered (PQ006) if
    ``worker`` is not registered.
    """
    cursor.execute("SELECT * FROM pq_dequeue(%s::text[], %s)", [_queue_names(queues), worker])
    return _one_row(cursor)


@_translated
def finish_dequeue(
    cursor: Any,
    done: Sequence[tuple[int, Any]],
    worker: str,
    default_result_ttl: int,
    queues: Sequence[str] | None,
    max_jobs: int,
) -> list[Row]:
    """Store finished jobs' results and claim up to ``max_jobs`` more (``pq_finish_dequeue``).

    ``done`` holds ``(job_id, result)`` pairs, results as :func:`pq.serialization.to_json`
    made them; ``queues`` None means every queue but failed. One round trip. Results of jobs
    no longer started by ``worker`` are not stored: the server sends a WARNING naming them
    (a notice on the connection). Raises WorkerNotRegistered (PQ006), storing nothing, if
    ``worker`` is not registered.
    """
    cursor.execute(
        "SELECT * FROM pq_finish_dequeue(%s::bigint[], %s::jsonb[], %s, %s, %s::text[], %s)",
        [
            [job_id for job_id, _ in done],
            [_json(result) for _, result in done],
            worker,
            default_result_ttl,
            _queue_names(queues),
            max_jobs,
        ],
    )
    return _all_rows(cursor)


@_translated
def finish_many(
    cursor: Any, done: Sequence[tuple[int, Any]], worker: str, default_result_ttl: int
) -> int:
    """Store finished jobs' results with ``pq_finish_many``; return how many were stored."""
    cursor.execute(
        "SELECT pq_finish_many(%s::bigint[], %s, %s::jsonb[], %s)",
        [
            [job_id for job_id, _ in done],
            worker,
            [_json(result) for _, result in done],
            default_result_ttl,
        ],
    )
    return int(cursor.fetchone()[0])


@_translated
def release(cursor: Any, job_ids: Sequence[int], worker: str) -> int:
    """Put claimed jobs back in their queues with ``pq_release``; return how many."""
    cursor.execute("SELECT pq_release(%s::bigint[], %s)", [list(job_ids), worker])
    return int(cursor.fetchone()[0])


@_translated
def finish(cursor: Any, job_id: int, worker: str, result: Any, default_result_ttl: int) -> bool:
    """Record a job's result with ``pq_finish``; False if ``worker`` no longer has it started."""
    cursor.execute(
        "SELECT pq_finish(%s, %s, %s::jsonb, %s)",
        [job_id, worker, _json(result), default_result_ttl],
    )
    return bool(cursor.fetchone()[0])


@_translated
def fail(
    cursor: Any,
    job_id: int,
    worker: str,
    exc_info: str,
    move_to_failed: bool = True,
    retry: bool = True,
) -> bool:
    """Record a failed run with ``pq_fail`` (retried while it has retries left, unless
    ``retry`` is False); False if ``worker`` no longer has the job started.

    The server then also sends a WARNING naming the job (a notice on the connection).
    """
    cursor.execute(
        "SELECT pq_fail(%s, %s, %s, %s, %s)", [job_id, worker, exc_info, move_to_failed, retry]
    )
    return bool(cursor.fetchone()[0])


@_translated
def requeue(cursor: Any, job_id: int) -> None:
    """Put a failed job back on its origin queue with ``pq_requeue``."""
    cursor.execute("SELECT pq_requeue(%s)", [job_id])


@_translated
def expire_jobs(cursor: Any) -> int:
    """Delete jobs whose result TTL ran out with ``pq_expire_jobs``; return how many."""
    cursor.execute("SELECT pq_expire_jobs()")
    return int(cursor.fetchone()[0])


@_translated
def next_due(cursor: Any, queues: Sequence[str] | None) -> datetime | None:
    """Return when the next scheduled job of ``queues`` (None: all) is due (``pq_next_due``)."""
    cursor.execute("SELECT pq_next_due(%s::text[])", [_queue_names(queues)])
    return cursor.fetchone()[0]


@_translated
def remove_empty_queues(cursor: Any) -> int:
    """Delete unused queue rows with default options (``pq_remove_empty_queues``); how many."""
    cursor.execute("SELECT pq_remove_empty_queues()")
    return int(cursor.fetchone()[0])


@_translated
def register_worker(
    cursor: Any,
    worker: str,
    queues: Sequence[str] | None,
    ttl: int,
    hostname: str,
    pid: int,
    keep_jobs: Sequence[int] = (),
    *,
    token: str | None = None,
) -> None:
    """Register a worker alive for ``ttl`` seconds with ``pq_register_worker``.

    ``token`` is random per worker process. On a re-registration with the same token (a
    reconnect), jobs the worker claimed but never got are put back, all but ``keep_jobs``:
    those it holds, or ran and has yet to store the outcome of. Another token under the
    same hostname and pid is a new process: the old one's started jobs are failed as
    abandoned. Raises WorkerNameTaken (PQ005) if another live worker has the name.
    """
    cursor.execute(
        "SELECT pq_register_worker(%s, %s::text[], %s, %s, %s, %s::bigint[], %s)",
        [worker, _queue_names(queues), ttl, hostname, pid, list(keep_jobs), token],
    )


@_translated
def heartbeat(cursor: Any, worker: str, ttl: int) -> bool | None:
    """Renew a heartbeat with ``pq_heartbeat``; return the stop flag, None if unregistered."""
    cursor.execute("SELECT pq_heartbeat(%s, %s)", [worker, ttl])
    return cursor.fetchone()[0]


@_translated
def worker_host(cursor: Any, worker: str) -> tuple[str, int | None] | None:
    """Return the hostname and pid registered for ``worker``, None if it is not registered."""
    cursor.execute("SELECT hostname, pid FROM pq_worker WHERE name = %s", [worker])
    row = cursor.fetchone()
    return None if row is None else (row[0], row[1])


@_translated
def unregister_worker(cursor: Any, worker: str) -> None:
    """Remove a stopping worker with ``pq_unregister_worker``."""
    cursor.execute("SELECT pq_unregister_worker(%s)", [worker])


@_translated
def reap_workers(cursor: Any) -> int:
    """Fail the jobs of workers whose heartbeat expired (``pq_reap_workers``); return how many."""
    cursor.execute("SELECT pq_reap_workers()")
    return int(cursor.fetchone()[0])


@_translated
def stop_workers(cursor: Any, workers: Sequence[str] | None = None) -> int:
    """Ask workers (all when None) to stop after their current job with ``pq_stop_workers``."""
    cursor.execute(
        "SELECT pq_stop_workers(%s::text[])", [None if workers is None else list(workers)]
    )
    return int(cursor.fetchone()[0])


@_translated
def listen(cursor: Any) -> None:
    """Subscribe the cursor's connection to channel ``pq_jobs`` (payload: the queue name)."""
    cursor.execute("LISTEN pq_jobs")


@_translated
def worker_count(cursor: Any) -> int:
    """Return how many workers are registered."""
    cursor.execute("SELECT count(*) FROM pq_worker")
    return int(cursor.fetchone()[0])


@_translated
def schema_version(cursor: Any) -> int | None:
    """Return ``pq_version()``; None where the installed SQL predates it (0001 to 0003)."""
    cursor.execute("SELECT to_regprocedure('pq_version()') IS NOT NULL")
    if not cursor.fetchone()[0]:
        return None
    cursor.execute("SELECT pq_version()")
    return int(cursor.fetchone()[0])


@_translated
def check_schema_version(cursor: Any, where: str) -> None:
    """Raise SchemaVersionMismatch, saying what to do, unless the SQL installed in database
    ``where`` is the version this code calls (:data:`SCHEMA_VERSION`)."""
    installed = schema_version(cursor)
    if installed == SCHEMA_VERSION:
        return
    if installed is None or installed < SCHEMA_VERSION:
        shown = "older than version 4" if installed is None else f"version {installed}"
        raise SchemaVersionMismatch(
            f"django-pq's SQL in database {where!r} is {shown}, and this code needs version "
            f"{SCHEMA_VERSION}: run `python manage.py migrate pq` (or apply "
            "sql/migrations/ in order), then start the worker again"
        )
    raise SchemaVersionMismatch(
        f"django-pq's SQL in database {where!r} is version {installed}, newer than this "
        f"code (version {SCHEMA_VERSION}): update django-pq where the worker runs"
    )


# The waiting, running and failed jobs of each queue, for pqinfo: one GROUP BY per status,
# each reading only its partial index (pq_job_queued, pq_job_scheduled, pq_job_started_queue,
# pq_job_failed), so finished rows, most of a busy table, are never read. Failed jobs sit in
# queue 'failed' and count under their origin; the 'failed' queue itself is no row. Every
# pq_queue row, and each name asked for, is shown, also without jobs.
_QUEUE_COUNTS = """
WITH counts (name, queued, scheduled, due, started, failed) AS (
    SELECT queue, count(*), 0, 0, 0, 0 FROM pq_job
     WHERE status = 'queued' AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
     GROUP BY queue
    UNION ALL
    SELECT queue, 0, count(*), count(*) FILTER (WHERE scheduled_for <= now()), 0, 0 FROM pq_job
     WHERE status = 'scheduled'
       AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
     GROUP BY queue
    UNION ALL
    SELECT queue, 0, 0, 0, count(*), 0 FROM pq_job
     WHERE status = 'started' AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
     GROUP BY queue
    UNION ALL
    SELECT origin, 0, 0, 0, 0, count(*) FROM pq_job
     WHERE status = 'failed' AND (%(queues)s::text[] IS NULL OR origin = ANY(%(queues)s::text[]))
     GROUP BY origin
    UNION ALL
    SELECT name, 0, 0, 0, 0, 0 FROM pq_queue
     WHERE name <> 'failed' AND (%(queues)s::text[] IS NULL OR name = ANY(%(queues)s::text[]))
    UNION ALL
    SELECT unnest(%(queues)s::text[]), 0, 0, 0, 0, 0
)
SELECT c.name, coalesce(q.serial, false) AS serial,
       sum(c.queued)::bigint AS queued, sum(c.scheduled)::bigint AS scheduled,
       sum(c.due)::bigint AS due, sum(c.started)::bigint AS started,
       sum(c.failed)::bigint AS failed
  FROM counts c LEFT JOIN pq_queue q ON q.name = c.name
 GROUP BY c.name, q.serial
 ORDER BY c.name
"""


@_translated
def queue_counts(cursor: Any, queues: Sequence[str] | None = None) -> list[Row]:
    """Return each queue's name, serial flag and queued, scheduled, due (scheduled for now or
    earlier), started and failed (by origin) job counts, by name; ``queues`` None: all."""
    cursor.execute(_QUEUE_COUNTS, {"queues": _queue_names(queues)})
    return _all_rows(cursor)


@_translated
def worker_states(cursor: Any, queues: Sequence[str] | None = None) -> list[Row]:
    """Return the registered workers, by name, with their heartbeat's age in seconds, whether
    it expired, the stop flag, and ``jobs``: their started jobs as ``{"id", "func"}`` dicts.

    ``queues`` given: only the workers serving one of them (or every queue: ``queues`` {}).
    """
    cursor.execute(
        "SELECT w.name, w.hostname, w.pid, w.queues,"
        " extract(epoch FROM now() - w.heartbeat_at)::float8 AS heartbeat_age,"
        " w.expires_at < now() AS expired, w.stop,"
        " coalesce((SELECT jsonb_agg(jsonb_build_object('id', j.id, 'func', j.func) ORDER BY j.id)"
        "             FROM pq_job j WHERE j.status = 'started' AND j.worker = w.name),"
        "          '[]'::jsonb)::text AS jobs"
        " FROM pq_worker w"
        " WHERE %(queues)s::text[] IS NULL OR w.queues = '{}' OR w.queues && %(queues)s::text[]"
        " ORDER BY w.name",
        {"queues": _queue_names(queues)},
    )
    rows = _all_rows(cursor)
    for row in rows:
        row["jobs"] = json.loads(row["jobs"])
    return rows


@_translated
def delete_jobs(cursor: Any, job_ids: Sequence[int]) -> int:
    """Delete the jobs ``job_ids`` whatever their status (the admin's delete); return how many.

    Locks: the rows deleted. A worker running one of them finds it gone when it stores the
    outcome (``pq_finish`` returns false); jobs depending on one stay deferred.
    """
    cursor.execute("DELETE FROM pq_job WHERE id = ANY(%s::bigint[])", [list(job_ids)])
    return int(cursor.rowcount)


_FLOW_PROGRESS = """
SELECT j.flow_id,
       count(*) FILTER (WHERE j.status = 'finished') AS finished,
       -- A flow has one job at a time out of 'deferred' and not yet 'finished'.
       max(j.id) FILTER (WHERE j.status NOT IN ('deferred', 'finished')) AS current_id,
       max(j.status) FILTER (WHERE j.status NOT IN ('deferred', 'finished')) AS current_status
  FROM pq_job j
 WHERE j.flow_id = ANY(%s::bigint[])
 GROUP BY j.flow_id
"""


@_translated
def flow_progress(cursor: Any, flow_ids: Sequence[int]) -> list[Row]:
    """For each of ``flow_ids`` with jobs: how many finished, and its current job (the one
    queued, scheduled, started or failed; None for a flow not started or done).

    Reads the flows' jobs by the pq_job_flow index. Locks: none.
    """
    cursor.execute(_FLOW_PROGRESS, [list(flow_ids)])
    return _all_rows(cursor)


@_translated
def delete_flows(cursor: Any, flow_ids: Sequence[int]) -> tuple[int, int]:
    """Delete the flows ``flow_ids`` and their jobs but the running ones (those end as jobs
    of no flow); return (flows, jobs) deleted. Run it in a transaction.

    Locks: the rows deleted.
    """
    cursor.execute(
        "DELETE FROM pq_job WHERE flow_id = ANY(%s::bigint[]) AND status <> 'started'",
        [list(flow_ids)],
    )
    jobs = int(cursor.rowcount)
    cursor.execute("DELETE FROM pq_flow WHERE id = ANY(%s::bigint[])", [list(flow_ids)])
    return int(cursor.rowcount), jobs


# Make scheduled jobs due now. Only the insert trigger notifies for scheduled rows, so the
# statement notifies each queue itself: an idle worker wakes and claims them at once instead
# of at its planned wake-up. pg_notify is volatile, so the planner keeps its column.
_RUN_NOW = """
WITH due AS (
    UPDATE pq_job SET scheduled_for = now()
     WHERE id = ANY(%s::bigint[]) AND status = 'scheduled'
    RETURNING queue
), per_queue AS (
    SELECT queue, count(*) AS jobs FROM due GROUP BY queue
)
SELECT coalesce(sum(jobs), 0)::bigint
  FROM (SELECT jobs, pg_notify('pq_jobs', queue) FROM per_queue) AS notified
"""


@_translated
def run_now(cursor: Any, job_ids: Sequence[int]) -> int:
    """Make the scheduled jobs among ``job_ids`` due now and notify their queues; how many.

    Locks: the rows updated. Jobs in another status are left alone.
    """
    cursor.execute(_RUN_NOW, [list(job_ids)])
    return int(cursor.fetchone()[0])


@_translated
def estimated_rows(cursor: Any, query: str, params: Sequence[Any]) -> int:
    """Return the planner's row estimate for ``query`` (``EXPLAIN``, nothing is run)."""
    cursor.execute(f"EXPLAIN (FORMAT JSON) {query}", list(params))
    plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


@_translated
def estimated_table_rows(cursor: Any, table: str) -> int:
    """Return ``pg_class.reltuples`` of ``table``: its rows at the last ANALYZE (0 if never)."""
    cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
    return max(int(cursor.fetchone()[0]), 0)
