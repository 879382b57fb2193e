"""Django models mirroring the tables that sql/schema.sql creates (managed by pq's migrations).

They give ORM access and the admin; enqueueing, dequeueing and ending jobs go through the SQL
functions (see :mod:`pq.sql`), never through model saves.
"""

from __future__ import annotations

import enum
import functools
import json
import pickle
from collections.abc import Callable
from typing import Any

from django.db import models

from pq.fields import PGArrayField, PickleJSONField
from pq.serialization import describe, from_json, import_callable


class JobStatus(enum.StrEnum):
    """A job's status; the values are those stored in pq_job.status (RQ's words)."""

    QUEUED = "queued"
    SCHEDULED = "scheduled"
    DEFERRED = "deferred"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"


class FlowStatus(enum.StrEnum):
    """A flow's status; the values are those stored in pq_flow.status (sql/flow.sql)."""

    DEFERRED = "deferred"  # being built: nothing of it runs yet
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"


class ReadOnlyModelError(TypeError):
    """A django-pq row was to be written through the ORM, bypassing the SQL that owns it."""


class ReadOnlyQuerySet(models.QuerySet):
    """Rows whose writes belong to django-pq's SQL functions: reading and deleting only."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise ReadOnlyModelError(
            f"{self.model._meta.db_table} rows are written by django-pq's SQL functions, "
            "not the ORM: enqueue with Queue.enqueue or pq_enqueue, requeue with "
            "pq.queue.get_failed_queue().requeue, and see README.rst for the others"
        )

    update = bulk_create = bulk_update = create = get_or_create = update_or_create = _refuse


class ReadOnlyModel(models.Model):
    """A model mirroring a table django-pq's SQL owns: ``save()`` raises ReadOnlyModelError,
    so the ORM cannot bypass the SQL's rules (states, checks, notifications)."""

    objects = ReadOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        type(self).objects.none()._refuse()


class QueueStore(ReadOnlyModel):
    """A row of pq_queue: a queue's stored options."""

    name = models.TextField(primary_key=True)
    serial = models.BooleanField(default=False)
    default_timeout = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        managed = False
        db_table = "pq_queue"
        verbose_name = "queue"

    def __str__(self) -> str:
        return self.name


class FlowStore(ReadOnlyModel):
    """A row of pq_flow: a workflow's jobs, run one after the other (see :mod:`pq.flow`)."""

    STATUS_CHOICES = [(status.value, status.value) for status in FlowStatus]

    name = models.TextField(null=True, blank=True)
    queue = models.TextField()
    status = models.TextField(choices=STATUS_CHOICES, default=FlowStatus.DEFERRED.value)
    jobs = PGArrayField(element_type="bigint", default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        managed = False
        db_table = "pq_flow"
        verbose_name = "flow"

    def __str__(self) -> str:
        return self.name or f"flow {self.pk}"

    @classmethod
    def get(cls, id_or_name: int | str, connection: str = "default") -> Any:
        """The flow with that id, or a queryset of the flows with that name (newest first).

        Raises :class:`pq.exceptions.NoSuchFlow` for an id no flow has.
        """
        from pq.exceptions import NoSuchFlow

        flows = cls.objects.using(connection)
        if isinstance(id_or_name, str):
            return flows.filter(name=id_or_name).order_by("-id")
        if isinstance(id_or_name, bool) or not isinstance(id_or_name, int):
            raise TypeError(
                f"Flow.get takes a flow's id (int) or name (str), got {type(id_or_name).__name__}"
            )
        try:
            return flows.get(pk=id_or_name)
        except cls.DoesNotExist:
            raise NoSuchFlow(
                f"no flow with id {id_or_name}: it never existed, was rolled back, or expired "
                "with its final job's result"
            ) from None

    def job_list(self) -> list[Job]:
        """The flow's jobs still stored, in the order they run."""
        order = {job_id: n for n, job_id in enumerate(self.jobs)}
        jobs = Job.objects.using(self._state.db or "default").filter(pk__in=self.jobs)
        return sorted(jobs, key=lambda job: order[job.pk])


class Job(ReadOnlyModel):
    """A row of pq_job: what to run, its state and its result. Read-only through the ORM."""

    STATUS_CHOICES = [(status.value, status.value) for status in JobStatus]

    id = models.BigAutoField(primary_key=True)
    queue = models.TextField(db_index=False)
    origin = models.TextField()
    status = models.TextField(choices=STATUS_CHOICES, default=JobStatus.QUEUED.value)
    func = models.TextField()
    args = PickleJSONField(default=list)
    kwargs = PickleJSONField(default=dict)
    instance = models.BinaryField(null=True, blank=True, editable=False)
    description = models.TextField(null=True, blank=True)
    timeout = models.IntegerField(null=True, blank=True)
    result_ttl = models.IntegerField(null=True, blank=True)
    result = PickleJSONField(null=True, blank=True)
    exc_info = models.TextField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(auto_now_add=True)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    repeat = models.IntegerField(default=0)
    repeat_until = models.DateTimeField(null=True, blank=True)
    repeat_interval = models.DurationField(null=True, blank=True)
    between_start = models.TimeField(null=True, blank=True)
    between_end = models.TimeField(null=True, blank=True)
    weekdays = PGArrayField(element_type="smallint", null=True, blank=True)
    time_zone = models.TextField(null=True, blank=True)
    repeat_from = models.DateTimeField(null=True, blank=True)
    cron = models.TextField(null=True, blank=True)
    schedule_name = models.TextField(null=True, blank=True)
    priority = models.SmallIntegerField(default=0)
    max_retries = models.IntegerField(default=0)
    retry_intervals = PGArrayField(element_type="integer", null=True, blank=True)
    attempts = models.IntegerField(default=0)
    errors = models.JSONField(default=list)
    flow = models.ForeignKey(
        FlowStore, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False
    )
    depends_on = models.BigIntegerField(null=True, blank=True)
    worker = models.TextField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        managed = False
        db_table = "pq_job"

    def __str__(self) -> str:
        try:
            shown = self.get_description()
        except Exception:  # an instance that does not unpickle: still name the job
            shown = f"{self.func}(...)"
        return f"job {self.pk} {shown}"

    @classmethod
    def fetch(cls, job_id: int, connection: str = "default") -> Job:
        """Return the job with id ``job_id``; raise Job.DoesNotExist if there is none."""
        return cls.objects.using(connection).get(pk=job_id)

    @classmethod
    def from_row(cls, row: dict[str, Any], using: str = "default", jsonb_text: bool = False) -> Job:
        """Return the Job of a pq_job row read with a raw psycopg2 cursor (see pq.sql).

        ``jsonb_text``: the cursor returns jsonb columns as text (as the worker's connection
        does), so each is decoded here. Raises :class:`UndecodableJob`, naming the column,
        for JSON or a pickled value that does not decode (any client of ``pq_enqueue`` can
        write one).
        """
        values = dict(row)
        for name in ("args", "kwargs", "result"):
            # args and kwargs are never JSON strings: a str is jsonb as text (Django's cursors)
            text = jsonb_text or name != "result"
            values[name] = _decode_column(name, values[name], text)
        if isinstance(values.get("errors"), str):  # written by pq's SQL only: plain JSON
            values["errors"] = json.loads(values["errors"])
        job = cls(**values)
        job._state.adding = False
        job._state.db = using
        return job

    @classmethod
    def enqueued(cls, values: dict[str, Any], using: str = "default") -> Job:
        """Return the Job of a row just inserted, from ``values``: what the enqueuer passed
        (``args`` and ``kwargs`` as :func:`pq.serialization.to_json` made them) and what the
        database returned (:func:`pq.sql.enqueue_job`). Other columns get their defaults,
        which are the table's.
        """
        names = _job_columns()
        row = [values[name] if name in values else default() for name, default in names]
        job = cls.from_db(using, [name for name, _ in names], row)
        job.args = from_json(job.args)
        job.kwargs = from_json(job.kwargs)
        return job

    @property
    def func_name(self) -> str:
        """The dotted path (or, for an instance method, the method name) the job runs."""
        return self.func

    def get_status(self, refresh: bool = True) -> JobStatus:
        """Return the job's status, reading it from the database first when ``refresh``."""
        if refresh and self.pk is not None:
            self.refresh_from_db(fields=["status", "queue", "result", "exc_info", "ended_at"])
        return JobStatus(self.status)

    @property
    def is_queued(self) -> bool:
        return self.status == JobStatus.QUEUED

    @property
    def is_started(self) -> bool:
        return self.status == JobStatus.STARTED

    @property
    def is_finished(self) -> bool:
        return self.status == JobStatus.FINISHED

    @property
    def is_failed(self) -> bool:
        return self.status == JobStatus.FAILED

    def get_instance(self) -> object | None:
        """Return the object whose method the job calls, or None for a plain function."""
        if self.instance is None:
            return None
        return pickle.loads(bytes(self.instance))

    def get_callable(self) -> Any:
        """Return the function or bound method the job runs (importing its module)."""
        instance = self.get_instance()
        if instance is not None:
            return getattr(instance, self.func)
        return import_callable(self.func)

    def get_description(self) -> str:
        """Return the job's call as logs show it, e.g. ``say_hello('You')``."""
        if self.description:
            return self.description
        return describe(
            self.func, list(self.args or []), dict(self.kwargs or {}), self.get_instance()
        )

    def checked_description(self) -> str:
        """Return :meth:`get_description`, raising :class:`UndecodableJob` when the job's
        instance does not unpickle or its arguments cannot be shown."""
        if self.description:
            return self.description
        try:
            instance = self.get_instance()
        except Exception as exc:
            raise UndecodableJob.of("instance", exc) from exc
        try:
            return describe(self.func, list(self.args or []), dict(self.kwargs or {}), instance)
        except Exception as exc:
            raise UndecodableJob.of("description", exc) from exc

    @property
    def retries_left(self) -> int:
        """How many more runs a failure of this job's current run leaves (0: none, or an
        exception handler called :meth:`stop_retrying`)."""
        if not self.may_retry:
            return 0
        return max(self.max_retries - max(self.attempts - 1, 0), 0)

    @property
    def may_retry(self) -> bool:
        """False once :meth:`stop_retrying` was called on this instance."""
        return not getattr(self, "_stop_retrying", False)

    def stop_retrying(self) -> None:
        """Fail this job for good at this failure, whatever retries it has left (for an
        exception handler: the worker passes ``retry => false`` to ``pq_fail``)."""
        self._stop_retrying = True

    def perform(self, func: Any = None) -> Any:
        """Run the job in this process and return its result.

        ``func`` is the job's callable when the caller has resolved it already.
        """
        if func is None:
            func = self.get_callable()
        return func(*(self.args or []), **(self.kwargs or {}))


class UndecodableJob(ValueError):
    """A job row whose arguments or instance cannot be turned back into Python values."""

    @classmethod
    def of(cls, part: str, error: BaseException) -> UndecodableJob:
        """Say which ``part`` of the row failed, and how: ``args: EOFError: Ran out of input``."""
        return cls(f"{part}: {type(error).__name__}: {error}")


def _decode_column(name: str, value: Any, text: bool) -> Any:
    """Return a jsonb column's Python value (``text``: ``value`` is its JSON text, if a str).

    Raises UndecodableJob naming the column; RecursionError (JSON nested thousands deep) is
    one of the errors it stands for.
    """
    try:
        if text and isinstance(value, str):
            value = json.loads(value)
        return from_json(value)
    except Exception as exc:
        raise UndecodableJob.of(name, exc) from exc


@functools.cache
def _job_columns() -> list[tuple[str, Callable[[], Any]]]:
    """Job's columns in table order, each with the callable giving its default value."""
    return [(field.attname, field.get_default) for field in Job._meta.concrete_fields]


class WorkerStore(models.Model):
    """A row of pq_worker: a registered worker and its heartbeat."""

    name = models.TextField(primary_key=True)
    hostname = models.TextField(default="")
    pid = models.IntegerField(null=True, blank=True)
    queues = PGArrayField(element_type="text", default=list)
    started_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    stop = models.BooleanField(
        default=False, help_text="Ask the worker to stop after its current job."
    )
    token = models.TextField(
        null=True, blank=True, help_text="Random per worker process: a reconnect, not a restart."
    )

    class Meta:
        managed = False
        db_table = "pq_worker"
        verbose_name = "worker"

    def __str__(self) -> str:
        return self.name


class Schedule(ReadOnlyModel):
    """A row of the view pq_schedules: a named schedule, its next run and its latest one.

    Made by ``Queue.cron``, ``Queue.schedule_call(name=...)``, ``pqschedule`` or
    ``pq_schedule_cron``; removed by :func:`pq.queue.unschedule` (``pq_unschedule``).
    """

    name = models.TextField(primary_key=True)
    schedule = models.TextField(help_text="A cron expression, or the repeat interval.")
    time_zone = models.TextField(null=True, blank=True)
    queue = models.TextField()
    func = models.TextField()
    args = PickleJSONField(default=list)
    kwargs = PickleJSONField(default=dict)
    next_run = models.DateTimeField()
    next_job_id = models.BigIntegerField()
    last_job_id = models.BigIntegerField(null=True, blank=True)
    last_status = models.TextField(null=True, blank=True)
    last_run = models.DateTimeField(null=True, blank=True)
    priority = models.SmallIntegerField(default=0)
    max_retries = models.IntegerField(default=0)
    retry_intervals = PGArrayField(element_type="integer", null=True, blank=True)

    class Meta:
        managed = False
        db_table = "pq_schedules"
        verbose_name = "cron schedule"

    def __str__(self) -> str:
        return self.name


class QueuedJob(Job):
    """Admin list of jobs waiting to run: queued, or deferred until their dependency ends."""

    class Meta:
        proxy = True
        verbose_name = "queued job"


class DequeuedJob(Job):
    """Admin list of jobs started or finished."""

    class Meta:
        proxy = True
        verbose_name = "dequeued job"


class ScheduledJob(Job):
    """Admin list of jobs scheduled for a time, repeating ones and cron ticks included."""

    class Meta:
        proxy = True
        verbose_name = "scheduled job"


class StartedJob(Job):
    """Admin list of jobs a worker is running."""

    class Meta:
        proxy = True
        verbose_name = "started job"


class FinishedJob(Job):
    """Admin list of finished jobs, kept until their result TTL runs out."""

    class Meta:
        proxy = True
        verbose_name = "finished job"


class FailedJob(Job):
    """Admin list of failed jobs."""

    class Meta:
        proxy = True
        verbose_name = "failed job"
