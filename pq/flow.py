"""Flows: jobs that run one after the other, each once the previous one has finished.

.. code-block:: python

    with Flow(q, name="signup") as f:
        f.enqueue(create_account, user_id)
        f.enqueue_call(send_welcome, args=(user_id,), timeout=60)
        f.schedule(tomorrow, send_tips, user_id)
    f.id, f.jobs                  # the flow's id and its jobs' ids, in order
    Flow.get(f.id)                # its FlowStore row (status: started, finished, failed)
    Flow.get("signup")            # the flows named so, newest first

The ``with`` block is a transaction on the queue's connection: the flow and its jobs are
stored when the block exits without an exception, and nothing of it is left when it raises.
The chaining is SQL's (``sql/flow.sql``): a job's successor is released when it finishes, a
failed job fails the flow and holds the jobs after it, requeueing it resumes the flow.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date, datetime
from types import TracebackType
from typing import Any

from django.db import connections, transaction

from pq import scheduling, sql
from pq.models import FlowStatus, FlowStore, Job
from pq.queue import Queue
from pq.retry import Retry

__all__ = ["Flow", "FlowStatus", "FlowStore"]

MAX_NAME_LENGTH = 100


class Flow:
    """A flow of jobs on ``queue``, built in a ``with`` block and started when it exits."""

    def __init__(self, queue: Queue, name: str | None = None) -> None:
        if not isinstance(queue, Queue):
            raise TypeError(f"Flow() takes the Queue its jobs run on, got {queue!r}")
        if not queue.is_async:
            raise ValueError(
                f"queue {queue.name!r} is synchronous (is_async=False): it runs each job as it "
                "is enqueued, so it cannot hold a flow; use an asynchronous queue"
            )
        if name is not None and (
            not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_LENGTH
        ):
            length = f"{len(name)} characters" if isinstance(name, str) else repr(name)
            raise ValueError(
                f"a flow name must be a string of 1 to {MAX_NAME_LENGTH} characters, got {length}"
            )
        self.queue = queue
        self.name = name
        self.id: int | None = None
        self.jobs: list[int] = []
        self._atomic: Any = None

    def __repr__(self) -> str:
        return f"<Flow {self.id} {self.name or ''} on {self.queue.name!r}: {len(self.jobs)} jobs>"

    def __enter__(self) -> Flow:
        if self._atomic is not None or self.id is not None:
            raise RuntimeError("a Flow is built in one with block; make a new Flow for another")
        atomic = transaction.atomic(using=self.queue.connection)
        atomic.__enter__()
        try:
            with connections[self.queue.connection].cursor() as cursor:
                self.id = sql.flow_create(cursor, self.queue.name, self.name)
        except BaseException:
            atomic.__exit__(*sys.exc_info())
            raise
        self._atomic = atomic
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        atomic, self._atomic = self._atomic, False  # False: built; no second block
        if exc_type is None:
            try:
                with connections[self.queue.connection].cursor() as cursor:
                    sql.flow_start(cursor, self.id)
            except BaseException:
                self._forget()
                atomic.__exit__(*sys.exc_info())
                raise
        else:
            self._forget()
        atomic.__exit__(exc_type, exc, traceback)  # commits, or rolls the flow back

    def _forget(self) -> None:
        """The flow is rolled back: it has no id or jobs any more."""
        self.id = None
        self.jobs = []

    def enqueue(self, *args: Any, **kwargs: Any) -> Job:
        """Add ``f(*args, **kwargs)`` to the flow: ``f.enqueue(func, 1, b=2)``; as
        :meth:`pq.queue.Queue.enqueue`, ``func=`` as a keyword makes it :meth:`enqueue_call`."""
        if not args:
            if "func" not in kwargs:
                raise TypeError("enqueue() needs the function to run: f.enqueue(func, *args)")
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
        """Add ``func(*args, **kwargs)`` with job options; it runs after the flow's previous
        job has finished. Returns its Job (status ``deferred`` until its turn). With
        ``retry``, the flow fails only once the job's retries are used up."""
        options = {"description": description, "priority": priority, "retry": retry}
        return self._add(func, args, kwargs, timeout, result_ttl, None, options)

    def schedule(self, at: datetime | date, *args: Any, **kwargs: Any) -> Job:
        """Add ``f(*args, **kwargs)`` to run after the previous job, and not before ``at``."""
        if not args:
            if "func" not in kwargs:
                raise TypeError("schedule() needs the function to run: f.schedule(at, func)")
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
        *,
        description: str | None = None,
        priority: int = 0,
        retry: Retry | None = None,
    ) -> Job:
        """:meth:`enqueue_call`, not to run before ``at`` (a datetime, naive ones in Django's
        current time zone, or a date: its midnight). A flow's jobs run once each: for
        repeating jobs use :meth:`pq.queue.Queue.schedule_call`."""
        when = scheduling.aware(at, "at")
        options = {"description": description, "priority": priority, "retry": retry}
        return self._add(func, args, kwargs, timeout, result_ttl, when, options)

    def _add(
        self,
        func: Callable[..., Any] | str,
        args: tuple[Any, ...] | list[Any] | None,
        kwargs: dict[str, Any] | None,
        timeout: int | None,
        result_ttl: int | None,
        at: datetime | None,
        options: dict[str, Any],
    ) -> Job:
        if not self._atomic:
            raise RuntimeError(
                "jobs are added to a flow inside its with block: "
                "with Flow(q) as f: f.enqueue(func, ...)"
            )
        # A savepoint: a job refused (bad arguments) leaves the flow's transaction usable,
        # so the caller may catch the error and go on building.
        with transaction.atomic(using=self.queue.connection):
            job = self.queue._enqueue(
                func,
                args,
                kwargs,
                timeout,
                result_ttl,
                options["description"],
                priority=options["priority"],
                retry=options["retry"],
                flow_id=self.id,
                at=at,
            )
        self.jobs.append(job.pk)
        return job

    @staticmethod
    def get(id_or_name: int | str, connection: str = "default") -> Any:
        """The stored flow with that id (a :class:`FlowStore`), or a queryset of the flows
        with that name, newest first. Raises :class:`pq.exceptions.NoSuchFlow` for an id
        no flow has."""
        return FlowStore.get(id_or_name, connection=connection)

    def store(self) -> FlowStore:
        """This flow's stored row, as it is now (status, jobs, ended_at, expires_at)."""
        if self.id is None:
            raise RuntimeError("this flow is not stored: it was not built, or was rolled back")
        return FlowStore.get(self.id, connection=self.queue.connection)
