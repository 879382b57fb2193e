"""Queues: where jobs are enqueued (RQ's API on PostgreSQL)."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from django.db import connections
from django.db.models import QuerySet

from pq import conf, scheduling, sql
from pq.models import Job, JobStatus
from pq.retry import Retry, job_options
from pq.serialization import callable_path, to_json

FAILED_QUEUE = "failed"

_cache: dict[tuple[Any, ...], Queue] = {}
_cache_lock = threading.Lock()


class Queue:
    """A named queue on a database connection.

    ``Queue()`` is the queue ``default``. Creating a Queue does not touch the database; the
    queue's row is created by the first enqueue (or at once for queues with options).
    ``is_async=False`` (or ``async=False``) runs jobs inline in :meth:`enqueue` instead.
    """

    def __init__(
        self,
        name: str = "default",
        timeout: int | None = None,
        connection: str = "default",
        is_async: bool = True,
        **options: Any,
    ) -> None:
        if "async" in options:
            is_async = bool(options.pop("async"))
        # Every queue can hold scheduled jobs: the seed's Queue(scheduled=True) is accepted.
        self.scheduled = bool(options.pop("scheduled", False))
        if options:
            raise TypeError(
                f"Queue() got unknown option(s) {', '.join(sorted(options))}; "
                "known options are name, timeout, connection, is_async and scheduled"
            )
        if not isinstance(name, str) or not name:
            raise ValueError(f"queue name must be a non-empty string, got {name!r}")
        if timeout is not None and (type(timeout) is not int or timeout <= 0):
            raise ValueError(f"timeout must be a positive whole number of seconds, got {timeout!r}")
        if connection not in connections.settings:
            raise ValueError(
                f"connection {connection!r} is not in settings.DATABASES; "
                f"use one of: {', '.join(sorted(connections.settings))}"
            )
        self.name = name
        self.timeout = timeout
        self.connection = connection
        self.is_async = is_async

    @classmethod
    def create(
        cls,
        name: str = "default",
        timeout: int | None = None,
        connection: str = "default",
        is_async: bool = True,
        **options: Any,
    ) -> Queue:
        """Return the Queue ``name``, cached in this process when ``PQ_QUEUE_CACHE`` is on."""
        if not conf.queue_cache():
            return cls(name, timeout, connection, is_async, **options)
        key = (cls, name, timeout, connection, is_async, tuple(sorted(options.items())))
        with _cache_lock:
            if key not in _cache:
                _cache[key] = cls(name, timeout, connection, is_async, **options)
            return _cache[key]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} on {self.connection!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Queue) and (self.name, self.connection) == (
            other.name,
            other.connection,
        )

    def __hash__(self) -> int:
        return hash((self.name, self.connection))

    def enqueue(self, *args: Any, **kwargs: Any) -> Job:
        """Enqueue ``f(*args, **kwargs)``: ``q.enqueue(f, 1, b=2)``.

        Every keyword goes to ``f``. To set job options use :meth:`enqueue_call`, or call
        this method with ``func=`` as a keyword (``q.enqueue(func=f, args=(1,), timeout=60)``),
        which is :meth:`enqueue_call` by another name.
        """
        if not args:
            if "func" not in kwargs:
                raise TypeError(
                    "enqueue() needs the function to run: q.enqueue(f, *args, **kwargs)"
                )
            return self.enqueue_call(**kwargs)
        func, *task_args = args
        return self.enqueue_call(func, args=task_args, kwargs=kwargs)

    def enqueue_call(
        self,
        func: Callable[..., Any] | str,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        timeout: int | None = None,
        result_ttl: int | None = None,
        *,
        description: str | None = None,
        priority: int = 0,
        retry: Retry | None = None,
    ) -> Job:
        """Enqueue ``func(*args, **kwargs)`` with job options; return the new Job.

        ``priority`` (-100 to 100): within this queue, higher runs first. ``retry``
        (``Retry(max=3, interval=[10, 60])``): run a failed job again. Calls ``pq_enqueue``
        on this queue's connection, inside the caller's transaction: a job enqueued in a
        transaction that rolls back never runs. Raises ValueError for a function workers
        cannot import and for invalid options.
        """
        return self._enqueue(
            func, args, kwargs, timeout, result_ttl, description, priority=priority, retry=retry
        )

    def _enqueue(
        self,
        func: Callable[..., Any] | str,
        args: tuple[Any, ...] | list[Any] | None,
        kwargs: dict[str, Any] | None,
        timeout: int | None,
        result_ttl: int | None,
        description: str | None,
        *,
        priority: int = 0,
        retry: Retry | None = None,
        flow_id: int | None = None,
        at: datetime | None = None,
    ) -> Job:
        """Enqueue one job, not to run before ``at`` (a one-off scheduled job); with
        ``flow_id``, as the next job of that flow being built (see :class:`pq.flow.Flow`)."""
        path, instance = callable_path(func)
        extra = job_options(priority, retry)
        task_args = list(args or ())
        task_kwargs = dict(kwargs or {})
        if not self.is_async:
            return self._run_inline(path, instance, task_args, task_kwargs, description)
        given = {
            "queue": self.name,
            "origin": self.name,
            "func": path,
            "args": to_json(task_args),
            "kwargs": to_json(task_kwargs),
            "timeout": timeout if timeout is not None else self.timeout,
            "result_ttl": result_ttl,
            "description": description,
            "instance": None if instance is None else pickle.dumps(instance),
            **extra,
        }
        options = {
            **extra,
            "timeout": given["timeout"],
            "result_ttl": result_ttl,
            "description": description,
            "instance": given["instance"],
            "scheduled_for": at,
        }
        with connections[self.connection].cursor() as cursor:
            if flow_id is None:
                row = sql.enqueue_job(
                    cursor, self.name, path, given["args"], given["kwargs"], **options
                )
            else:
                row = sql.flow_enqueue_job(
                    cursor, flow_id, path, given["args"], given["kwargs"], **options
                )
        return Job.enqueued({**given, **row}, using=self.connection)

    def schedule(self, at: datetime | date, *args: Any, **kwargs: Any) -> Job:
        """Schedule ``f(*args, **kwargs)`` to run at ``at``: ``q.schedule(at, f, 1, b=2)``.

        Every keyword goes to ``f``; for options (repeat, interval, window, weekdays) use
        :meth:`schedule_call`, or call this with ``func=`` as a keyword.
        """
        if not args:
            if "func" not in kwargs:
                raise TypeError("schedule() needs the function to run: q.schedule(at, f, *args)")
            return self.schedule_call(at, **kwargs)
        func, *task_args = args
        return self.schedule_call(at, func, args=task_args, kwargs=kwargs)

    def schedule_call(
        self,
        at: datetime | date,
        func: Callable[..., Any] | str,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        timeout: int | None = None,
        result_ttl: int | None = None,
        repeat: int | datetime = 0,
        interval: int | float | timedelta | relativedelta | None = 0,
        between: str | tuple[time, time] | None = None,
        weekdays: Any = None,
        *,
        description: str | None = None,
        name: str | None = None,
        priority: int = 0,
        retry: Retry | None = None,
    ) -> Job:
        """Schedule ``func(*args, **kwargs)`` at ``at``; return the Job of its first run.

        ``at`` is a datetime (naive: in Django's current time zone) or a date (its midnight).
        ``repeat``: 0 runs once, N repeats N times after the first run (N + 1 runs in all),
        -1 for ever, a datetime repeats until then. ``interval``: seconds, a timedelta or a
        relativedelta (months work: ``relativedelta(months=1, days=-1)`` from the 1st is each
        month's last day); default one day with a window or weekdays. ``between``: a daily
        window such as ``'2:00/18:30'`` (crossing midnight: ``'22:00-02:00'``); ``weekdays``:
        dateutil's ``MO``..``SU`` or 0 (Monday) to 6. Runs stay on the interval's grid from
        the first run (moved into the window and weekdays) and runs outside them are skipped.
        The window, the weekdays and the interval's days are read in Django's current time
        zone. ``name`` makes a repeating job a named schedule (created or replaced;
        :meth:`unschedule`). ``priority`` and ``retry`` are as for :meth:`enqueue_call`, for
        every run. Each run is its own job; the next run is planned in SQL when a
        worker claims this one. Calls ``_pq_schedule_job``, in the caller's transaction.
        Raises ValueError (or pq's InvalidArgument) naming a bad option; nothing is stored.
        """
        if not self.is_async:
            raise ValueError(
                f"queue {self.name!r} is synchronous (is_async=False): it runs jobs at once "
                "and cannot schedule them"
            )
        path, instance = callable_path(func)
        plan = scheduling.plan(at, repeat, interval, between, weekdays)
        options = job_options(priority, retry)
        with connections[self.connection].cursor() as cursor:
            job_id = sql.schedule_job(
                cursor,
                self.name,
                path,
                to_json(list(args or ())),
                to_json(dict(kwargs or {})),
                scheduled_for=plan.scheduled_for,
                repeat=plan.repeat,
                repeat_until=plan.repeat_until,
                repeat_interval=plan.repeat_interval,
                between_start=plan.between_start,
                between_end=plan.between_end,
                weekdays=plan.weekdays,
                time_zone=plan.time_zone,
                timeout=timeout if timeout is not None else self.timeout,
                result_ttl=result_ttl,
                description=description,
                instance=None if instance is None else pickle.dumps(instance),
                name=name,
                **options,
            )
        return Job.objects.using(self.connection).get(pk=job_id)

    def cron(
        self,
        schedule: str,
        func: Callable[..., Any] | str,
        *,
        name: str | None = None,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        time_zone: str | None = None,
        timeout: int | None = None,
        result_ttl: int | None = None,
        description: str | None = None,
        priority: int = 0,
        retry: Retry | None = None,
    ) -> Job:
        """Run ``func`` on this queue at each tick of the cron expression ``schedule``.

        Creates or replaces the named schedule ``name`` (default: the function's dotted
        path, so calling this again at each deploy replaces rather than adds) with
        ``pq_schedule_cron``; the fields are read in ``time_zone`` (default: Django's current
        time zone). ``priority`` and ``retry`` are as for :meth:`enqueue_call`, for every
        tick. Returns the Job of the next tick. Raises pq's InvalidArgument naming a
        bad field, zone or argument; nothing is stored then.
        """
        path, instance = callable_path(func)
        if instance is not None:
            raise ValueError(f"cron cannot run the instance method {path}; schedule a function")
        options = job_options(priority, retry)
        with connections[self.connection].cursor() as cursor:
            job_id = sql.schedule_cron(
                cursor,
                name if name is not None else path,
                schedule,
                path,
                to_json(list(args or ())),
                to_json(dict(kwargs or {})),
                queue=self.name,
                time_zone=time_zone or scheduling.current_time_zone(),
                timeout=timeout if timeout is not None else self.timeout,
                result_ttl=result_ttl,
                description=description,
                **options,
            )
        return Job.objects.using(self.connection).get(pk=job_id)

    def unschedule(self, name: str) -> bool:
        """Remove the named schedule (``pq_unschedule``); False if there is none."""
        return unschedule(name, connection=self.connection)

    def enqueue_many(
        self,
        calls: Iterable[Callable[..., Any] | str | tuple[Any, ...]],
        *,
        timeout: int | None = None,
        result_ttl: int | None = None,
        priority: int = 0,
        retry: Retry | None = None,
    ) -> list[int | None]:
        """Enqueue a batch of jobs in one statement and one notification; return their ids.

        Each call is ``func``, ``(func, args)`` or ``(func, args, kwargs)``; ``timeout``,
        ``result_ttl``, ``priority`` and ``retry`` apply to all. Instance methods cannot be
        enqueued this way (their object is pickled per job: use :meth:`enqueue_call`). Calls
        ``pq_enqueue_many``. On a synchronous queue the jobs run inline at once and their
        ids are None.
        """
        funcs: list[str] = []
        args: list[Any] = []
        kwargs: list[Any] = []
        for number, call in enumerate(calls, start=1):
            func, call_args, call_kwargs = _unpack_call(call, number)
            path, instance = callable_path(func)
            if instance is not None:
                raise ValueError(
                    f"call {number}: enqueue_many cannot enqueue the instance method {path}; "
                    "use enqueue_call for it"
                )
            funcs.append(path)
            args.append(list(call_args))
            kwargs.append(dict(call_kwargs))
        if not self.is_async:  # run inline; such jobs are not stored, so they have no id
            for path, call_args, call_kwargs in zip(funcs, args, kwargs, strict=True):
                self._run_inline(path, None, call_args, call_kwargs, None)
            return [None] * len(funcs)
        with connections[self.connection].cursor() as cursor:
            return sql.enqueue_many(
                cursor,
                self.name,
                funcs,
                [to_json(a) for a in args],
                [to_json(k) for k in kwargs],
                timeout=timeout if timeout is not None else self.timeout,
                result_ttl=result_ttl,
                **job_options(priority, retry),
            )

    def _run_inline(
        self,
        path: str,
        instance: object | None,
        args: list[Any],
        kwargs: dict[str, Any],
        description: str | None,
    ) -> Job:
        """Run a job in this process (synchronous queue); its exceptions propagate."""
        job = Job(
            queue=self.name,
            origin=self.name,
            func=path,
            args=args,
            kwargs=kwargs,
            description=description,
            status=JobStatus.STARTED.value,
            instance=None if instance is None else pickle.dumps(instance),
        )
        job.result = job.perform()
        job.status = JobStatus.FINISHED.value
        return job

    @property
    def count(self) -> int:
        """The number of jobs waiting in the queue (``pq_count``)."""
        with connections[self.connection].cursor() as cursor:
            return sql.count_queued(cursor, self.name)

    def is_empty(self) -> bool:
        """Whether no job waits in the queue."""
        return self.count == 0

    def empty(self) -> int:
        """Delete every job waiting in the queue (as RQ's ``empty``); return how many."""
        with connections[self.connection].cursor() as cursor:
            return sql.empty_queue(cursor, self.name)

    @property
    def jobs(self) -> QuerySet[Job]:
        """The jobs in this queue, oldest first."""
        return Job.objects.using(self.connection).filter(queue=self.name).order_by("id")

    @property
    def job_ids(self) -> list[int]:
        return list(self.jobs.values_list("id", flat=True))


class SerialQueue(Queue):
    """A queue whose jobs run one at a time, in the order they were enqueued.

    ``SerialQueue()`` is the queue ``serial``. Making one records the queue as serial in the
    database at once (``pq_create_queue(name, '{"serial": true}')`` on the queue's connection,
    inside the caller's transaction): serial is a property of the queue's row, so every job
    put on it, by a plain ``Queue(name)``, from SQL or by ``pqenqueue``, runs one at a time.
    """

    def __init__(
        self,
        name: str = "serial",
        timeout: int | None = None,
        connection: str = "default",
        is_async: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(name, timeout, connection, is_async, **options)
        with connections[self.connection].cursor() as cursor:
            sql.create_queue(cursor, self.name, {"serial": True})  # other options stay

    @classmethod
    def create(
        cls,
        name: str = "serial",
        timeout: int | None = None,
        connection: str = "default",
        is_async: bool = True,
        **options: Any,
    ) -> Queue:
        """Return the SerialQueue ``name``, cached as :meth:`Queue.create` caches queues."""
        return super().create(name, timeout, connection, is_async, **options)


class FailedQueue(Queue):
    """The ``failed`` queue, where workers move jobs that raised, crashed or timed out."""

    def __init__(self, connection: str = "default") -> None:
        super().__init__(FAILED_QUEUE, connection=connection)

    def enqueue_call(self, *args: Any, **kwargs: Any) -> Job:
        raise ValueError("jobs cannot be enqueued on the failed queue; enqueue on their own queue")

    def requeue(self, job_id: int | Job) -> None:
        """Put failed job ``job_id`` back on its origin queue (``pq_requeue``).

        Raises NoSuchJob if there is no such job and InvalidJobState if it has not failed.
        """
        job_id = job_id.pk if isinstance(job_id, Job) else job_id
        with connections[self.connection].cursor() as cursor:
            sql.requeue(cursor, job_id)

    def requeue_all(self) -> int:
        """Requeue every job in the failed queue; return how many."""
        ids = self.job_ids
        for job_id in ids:
            self.requeue(job_id)
        return len(ids)


def unschedule(name: str, connection: str = "default") -> bool:
    """Remove the named schedule (``pq_unschedule``); False if there is none. Its pending run
    is deleted; a run already started goes on."""
    with connections[connection].cursor() as cursor:
        return sql.unschedule(cursor, name)


def get_failed_queue(connection: str = "default") -> FailedQueue:
    """Return the failed queue of database ``connection``."""
    return FailedQueue(connection=connection)


def _unpack_call(call: Any, number: int) -> tuple[Any, Any, Any]:
    """Split an enqueue_many call into (func, args, kwargs)."""
    if not isinstance(call, tuple):
        return call, (), {}
    if not 1 <= len(call) <= 3:
        raise ValueError(
            f"call {number}: expected func, (func, args) or (func, args, kwargs), got {call!r}"
        )
    return call[0], call[1] if len(call) > 1 else (), call[2] if len(call) > 2 else {}
