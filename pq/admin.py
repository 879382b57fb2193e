"""Admin lists of jobs by state, queues and workers, read on PQ_ADMIN_CONNECTION.

Writes go through :mod:`pq.sql` (requeue, delete, run now, stop), never model saves. Lists
of jobs never count a whole status: :class:`EstimatedCountPaginator` counts up to a bound
(in rows and in time) and asks the planner beyond it; their date hierarchy reads no job but
the oldest and newest ones (:class:`JobChangeList`). ``bench/admin_changelist.py`` times
every list at 1,000 and 1,000,000 jobs.
"""

from __future__ import annotations

import calendar
import datetime
import functools
import json
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import OperationalError, connections, transaction
from django.db.models import F, Lookup, Max, Min, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.text import smart_split, unescape_string_literal

from pq import conf, sql
from pq.exceptions import PQError
from pq.models import (
    DequeuedJob,
    FailedJob,
    FinishedJob,
    Job,
    QueuedJob,
    QueueStore,
    ScheduledJob,
    StartedJob,
    WorkerStore,
)


class EstimatedCountPaginator(Paginator):
    """Count exactly up to :attr:`exact_up_to` rows, and beyond that take PostgreSQL's estimate.

    The exact count reads at most ``exact_up_to + 1`` rows (a LIMIT in a subquery, without
    the list's ORDER BY, so the planner may read a status's partial index rather than walk
    the primary key past rows of other statuses) for at most :attr:`count_timeout_ms`
    (``statement_timeout``; a search matching few of many jobs reads them all). Past either
    bound it takes the planner's estimate, and the page links are approximate.
    """

    exact_up_to = 10_000
    count_timeout_ms = 100

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        bounded = self._bounded_count(queryset)
        if bounded is not None and bounded <= self.exact_up_to:
            return bounded
        with connections[queryset.db].cursor() as cursor:
            if queryset.query.where:
                query, params = queryset.query.get_compiler(using=queryset.db).as_sql()
                estimate = sql.estimated_rows(cursor, query, params)
            else:
                estimate = sql.estimated_table_rows(cursor, queryset.model._meta.db_table)
        return max(bounded or 0, estimate)

    def _bounded_count(self, queryset: QuerySet[Any]) -> int | None:
        """Count up to ``exact_up_to + 1`` rows; None when that took over the time bound."""
        bounded = queryset.order_by()[: self.exact_up_to + 1]
        try:
            # A savepoint in a transaction: a cancelled count rolls back to it, and so does
            # the SET LOCAL; a count in time resets the setting before the savepoint is released.
            with transaction.atomic(using=queryset.db):
                with connections[queryset.db].cursor() as cursor:
                    cursor.execute(
                        "SELECT current_setting('statement_timeout'),"
                        " set_config('statement_timeout', %s, true)",
                        [f"{self.count_timeout_ms}ms"],
                    )
                    previous = cursor.fetchone()[0]
                    count = bounded.count()
                    cursor.execute("SELECT set_config('statement_timeout', %s, true)", [previous])
                    return count
        except OperationalError as exc:
            if _sqlstate(exc) != QUERY_CANCELED:  # anything but the timeout is raised
                raise
            return None


QUERY_CANCELED = "57014"


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of the driver's error under Django's (psycopg2: pgcode, psycopg: sqlstate)."""
    cause = exc.__cause__
    return getattr(cause, "pgcode", None) or getattr(cause, "sqlstate", None)


class DateBoundsQuerySet(QuerySet):
    """A changelist's queryset whose date hierarchy reads only the newest and oldest jobs
    (mixed, by :func:`_with_date_bounds`, into the model's own queryset class).

    Django's date hierarchy runs ``aggregate(Min, Max)`` of the field over the list's rows,
    then ``datetimes()`` (a ``DISTINCT date_trunc``) over them: two scans of every matching
    row, no index serving either (1.5 s on the list of 900,000 finished jobs). Here both come
    from :attr:`bounds`, the earliest and latest ``enqueued_at`` of the whole table (read
    by :class:`JobChangeList` on the primary key: ``enqueued_at`` is set to ``now()`` at
    insert and only ever moved to ``now()`` later), and the periods offered are every year,
    month or day between them: one may hold none of the list's jobs (its link shows an
    empty list). Filtering by a period is Django's own.
    """

    bounds: tuple[datetime.datetime, datetime.datetime] | None = None
    #: The year and month of the drill-down (request parameters), set with :attr:`bounds`.
    period: tuple[int | None, int | None] = (None, None)

    def aggregate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        first, last = kwargs.get("first"), kwargs.get("last")
        if not args and len(kwargs) == 2 and isinstance(first, Min) and isinstance(last, Max):
            bounds = self.bounds or (None, None)
            return {"first": bounds[0], "last": bounds[1]}
        return super().aggregate(*args, **kwargs)

    def datetimes(self, field_name: str, kind: str, *args: Any, **kwargs: Any) -> Any:
        if kind not in ("year", "month", "day"):
            return super().datetimes(field_name, kind, *args, **kwargs)
        return [_aware(day) for day in self._periods(kind)]

    def dates(self, field_name: str, kind: str, order: str = "ASC") -> Any:
        if kind not in ("year", "month", "day"):
            return super().dates(field_name, kind, order)
        return self._periods(kind)

    def _periods(self, kind: str) -> list[datetime.date]:
        """The first day of each year, month or day between :attr:`bounds`, in the drill-down."""
        if self.bounds is None:
            return []
        first, last = (timezone.localtime(bound).date() for bound in self.bounds)
        year, month = self.period
        if kind == "year":
            return [datetime.date(y, 1, 1) for y in range(first.year, last.year + 1)]
        year = year or first.year
        if kind == "month":
            candidates = [datetime.date(year, m, 1) for m in range(1, 13)]
            start = first.replace(day=1)
        else:
            month = month or first.month
            days = calendar.monthrange(year, month)[1]
            candidates = [datetime.date(year, month, d) for d in range(1, days + 1)]
            start = first
        return [day for day in candidates if start <= day <= last]


@functools.cache
def _date_bounds_class(base: type[QuerySet[Any]]) -> type[DateBoundsQuerySet]:
    return type(f"DateBounds{base.__name__}", (DateBoundsQuerySet, base), {})


def _with_date_bounds(queryset: QuerySet[Any]) -> DateBoundsQuerySet:
    """A copy of ``queryset`` (same filters, database, and queryset class's other methods)
    whose date hierarchy is :class:`DateBoundsQuerySet`'s."""
    if isinstance(queryset, DateBoundsQuerySet):
        return queryset._chain()
    cls = _date_bounds_class(type(queryset))
    return cls(model=queryset.model, query=queryset.query.chain(), using=queryset._db)


def _aware(day: datetime.date) -> datetime.datetime:
    moment = datetime.datetime(day.year, day.month, day.day)
    return timezone.make_aware(moment) if settings.USE_TZ else moment


class JobChangeList(ChangeList):
    """A list of jobs whose date hierarchy is :class:`DateBoundsQuerySet`'s, and whose count
    is the page's own length when the first page is not full (the paginator's count may be
    the planner's estimate)."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> Any:
        queryset = super().get_queryset(request, exclude_parameters)
        if not self.date_hierarchy:
            return queryset
        bounded = _with_date_bounds(queryset)
        bounded.bounds = _date_bounds(queryset, self.date_hierarchy)
        bounded.period = (
            _int(self.params.get(f"{self.date_hierarchy}__year")),
            _int(self.params.get(f"{self.date_hierarchy}__month")),
        )
        return bounded

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        shown = len(self.result_list)
        if self.page_num == 1 and shown < self.list_per_page and shown != self.result_count:
            self.result_count = shown
            self.multi_page = False


def _int(value: Any) -> int | None:
    if isinstance(value, list):
        value = value[-1] if value else None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


#: Rows read at each end of the table for the date bounds: ids are drawn in insert order,
#: and a transaction inserting late may have begun (its now()) before one with smaller ids.
DATE_BOUND_ROWS = 100


def _date_bounds(
    queryset: QuerySet[Any], field: str
) -> tuple[datetime.datetime, datetime.datetime] | None:
    """The earliest and latest ``field`` (enqueued_at) of the table, read by primary key."""
    table = queryset.model._base_manager.using(queryset.db).values_list(field, flat=True)
    oldest = list(table.order_by("pk")[:DATE_BOUND_ROWS])
    if not oldest:
        return None
    newest = list(table.order_by("-pk")[:DATE_BOUND_ROWS])
    return min(oldest), max([*newest, timezone.now()])


class ReadOnConnection(admin.ModelAdmin):
    """Read the admin's rows on the PQ_ADMIN_CONNECTION database."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).using(conf.admin_connection())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class QueueFilter(admin.SimpleListFilter):
    """The jobs of one queue; the choices are pq_queue's rows, not a scan of pq_job."""

    title = "queue"
    parameter_name = "queue"
    field = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = QueueStore.objects.using(conf.admin_connection()).values_list("name", flat=True)
        return [(name, name) for name in names.order_by("name") if name != "failed"]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() is None:
            return queryset
        return queryset.filter(**{self.field: self.value()})


class OriginFilter(QueueFilter):
    """Failed jobs sit in queue 'failed': filter them by the queue they came from."""

    title = "origin"
    parameter_name = "origin"
    field = "origin"


class StatusFilter(admin.SimpleListFilter):
    """One of the statuses a job list shows (static choices)."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(status, status) for status in model_admin.statuses]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() is None:
            return queryset
        return queryset.filter(status=self.value())


def _pretty_json(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, default=repr))


class ILike(Lookup):
    """``lhs ILIKE rhs``: a case-insensitive LIKE the planner estimates from the column's
    statistics (used directly in ``filter()``, not registered on any field)."""

    lookup_name = "pq_ilike"

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} ILIKE {rhs}", [*lhs_params, *rhs_params]


class JobAdmin(ReadOnConnection):
    """A list of the jobs in :attr:`statuses`; the change page shows a job, read-only."""

    statuses: tuple[str, ...] = ()
    list_display: Sequence[str] = ("id", "func", "queue", "status", "enqueued_at")
    list_filter: Sequence[Any] = (QueueFilter,)
    search_fields = ("func",)
    date_hierarchy = "enqueued_at"
    ordering: Sequence[str] = ("-id",)
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    actions = ["delete_jobs"]
    fieldsets = (
        (None, {"fields": ("id", "func", "description", "queue", "origin", "status")}),
        ("Call", {"fields": ("args_json", "kwargs_json")}),
        ("Outcome", {"fields": ("worker", "started_at", "ended_at", "result_json", "traceback")}),
        (
            "Schedule",
            {
                "fields": (
                    "scheduled_for",
                    "repeat",
                    "repeat_interval",
                    "repeat_until",
                    "cron",
                    "schedule_name",
                    "time_zone",
                ),
                "classes": ("collapse",),
            },
        ),
        (
            "Options",
            {
                "fields": (
                    "timeout",
                    "result_ttl",
                    "created_at",
                    "enqueued_at",
                    "expires_at",
                    "depends_on",
                    "flow",
                ),
                "classes": ("collapse",),
            },
        ),
    )
    readonly_fields = [f.name for f in Job._meta.fields] + [
        "args_json",
        "kwargs_json",
        "result_json",
        "traceback",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # status = a OR status = b, not status IN (a, b): the planner reads an OR of
        # equalities with the statuses' partial indexes (pq_job_queued, pq_job_deferred...).
        statuses = Q()
        for status in self.statuses:
            statuses |= Q(status=status)
        return super().get_queryset(request).filter(statuses)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type:
        return JobChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """Jobs whose function name contains every word of ``search_term``, in any case.

        ``func ILIKE '%word%'``, not Django's ``UPPER(func) LIKE UPPER('%word%')``: the
        planner has statistics on func, none on ``UPPER(func)``, and on a guessed 0.5 %
        match it scanned and sorted the whole status rather than walk the primary key to
        the page's 100 rows (0.6 s against 0.05 s at 1,000,000 jobs).
        """
        if tuple(self.search_fields) != ("func",):  # a subclass's own fields: Django's search
            return super().get_search_results(request, queryset, search_term)
        connection = connections[queryset.db]
        for word in smart_split(search_term):
            if word.startswith(('"', "'")) and word[0] == word[-1]:  # as Django's search
                word = unescape_string_literal(word)
            pattern = f"%{connection.ops.prep_for_like_query(word)}%"
            queryset = queryset.filter(ILike(F("func"), pattern))
        return queryset, False

    def get_list_filter(self, request: HttpRequest) -> Sequence[Any]:
        if len(self.statuses) > 1:
            return (*self.list_filter, StatusFilter)
        return self.list_filter

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Django's delete goes through the ORM's collector; delete_jobs is the way, in SQL.
        return False

    def has_remove_permission(self, request: HttpRequest) -> bool:
        """Whether the user may delete jobs: Django's delete permission on the list's model."""
        return admin.ModelAdmin.has_delete_permission(self, request)

    @admin.display(description="args")
    def args_json(self, job: Job) -> str:
        return _pretty_json(job.args)

    @admin.display(description="kwargs")
    def kwargs_json(self, job: Job) -> str:
        return _pretty_json(job.kwargs)

    @admin.display(description="result")
    def result_json(self, job: Job) -> str:
        return _pretty_json(job.result)

    @admin.display(description="traceback")
    def traceback(self, job: Job) -> str:
        return format_html("<pre>{}</pre>", job.exc_info) if job.exc_info else "-"

    def _selected(self, queryset: QuerySet[Any]) -> list[int]:
        return list(queryset.values_list("id", flat=True))

    @admin.action(description="Delete the selected jobs", permissions=["remove"])
    def delete_jobs(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        with connections[conf.admin_connection()].cursor() as cursor:
            deleted = sql.delete_jobs(cursor, self._selected(queryset))
        self.message_user(request, f"Deleted {deleted} job(s).")


@admin.register(QueuedJob)
class QueuedJobAdmin(JobAdmin):
    statuses = ("queued", "deferred")
    list_display = ("id", "func", "queue", "status", "enqueued_at", "depends_on")
    # Oldest first, but not by walking the primary key: the waiting jobs are usually the
    # newest rows, and a walk from id 1 read every finished and failed row before them
    # (0.5 s at 1,000,000 jobs). Ordered by an expression, the rows come from the
    # statuses' partial indexes (pq_job_queued, pq_job_deferred) and a top-100 sort: a cost
    # that grows with the jobs waiting, not with the table.
    ordering = ((F("id") + 0).asc(),)


@admin.register(ScheduledJob)
class ScheduledJobAdmin(JobAdmin):
    statuses = ("scheduled",)
    list_display = (
        "id",
        "func",
        "queue",
        "scheduled_for",
        "repeat",
        "repeat_interval",
        "cron",
        "schedule_name",
        "time_zone",
    )
    ordering = ("scheduled_for", "id")
    actions = ["run_now", "delete_jobs"]

    @admin.action(description="Run the selected jobs now")
    def run_now(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        with connections[conf.admin_connection()].cursor() as cursor:
            due = sql.run_now(cursor, self._selected(queryset))
        self.message_user(request, f"{due} job(s) are due now.")


@admin.register(StartedJob)
class StartedJobAdmin(JobAdmin):
    statuses = ("started",)
    list_display = ("id", "func", "queue", "worker", "started_at")


@admin.register(FinishedJob)
class FinishedJobAdmin(JobAdmin):
    statuses = ("finished",)
    list_display = ("id", "func", "queue", "ended_at", "short_result")

    @admin.display(description="result")
    def short_result(self, job: Job) -> str:
        shown = json.dumps(job.result, default=repr)
        return shown if len(shown) <= 80 else shown[:79] + "…"


@admin.register(DequeuedJob)
class DequeuedJobAdmin(JobAdmin):
    """Started and finished jobs in one list."""

    statuses = ("started", "finished")
    list_display = ("id", "func", "queue", "status", "enqueued_at", "ended_at", "worker")


@admin.register(FailedJob)
class FailedJobAdmin(JobAdmin):
    statuses = ("failed",)
    actions = ["requeue", "delete_jobs"]
    list_display = ("id", "func", "origin", "ended_at", "worker")
    list_filter = (OriginFilter,)

    @admin.action(description="Requeue the selected jobs on their origin queues")
    def requeue(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        done = 0
        with connections[conf.admin_connection()].cursor() as cursor:
            for job_id in self._selected(queryset):
                try:
                    sql.requeue(cursor, job_id)
                    done += 1
                except PQError as exc:
                    self.message_user(request, f"Job {job_id}: {exc}", messages.ERROR)
        self.message_user(request, f"Requeued {done} job(s).")


class CountedChangeList(ChangeList):
    """A changelist whose page's rows get extra values from one SQL call (few rows a page)."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        self.model_admin.annotate_page(list(self.result_list))


@admin.register(QueueStore)
class QueueAdmin(ReadOnConnection):
    list_display = (
        "name",
        "serial",
        "queued",
        "scheduled",
        "started",
        "failed",
        "default_timeout",
        "created_at",
    )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type:
        return CountedChangeList

    def annotate_page(self, queues: list[QueueStore]) -> None:
        """Set each queue's job counts (failed ones by origin) with :func:`pq.sql.queue_counts`."""
        with connections[conf.admin_connection()].cursor() as cursor:
            rows = sql.queue_counts(cursor, [queue.name for queue in queues])
        counts = {row["name"]: row for row in rows}
        for queue in queues:
            queue.counts = counts.get(queue.name, {})

    @admin.display(description="queued")
    def queued(self, queue: QueueStore) -> int | None:
        return getattr(queue, "counts", {}).get("queued")

    @admin.display(description="scheduled")
    def scheduled(self, queue: QueueStore) -> int | None:
        return getattr(queue, "counts", {}).get("scheduled")

    @admin.display(description="started")
    def started(self, queue: QueueStore) -> int | None:
        return getattr(queue, "counts", {}).get("started")

    @admin.display(description="failed")
    def failed(self, queue: QueueStore) -> int | None:
        return getattr(queue, "counts", {}).get("failed")


@admin.register(WorkerStore)
class WorkerAdmin(ReadOnConnection):
    list_display = (
        "name",
        "hostname",
        "pid",
        "queues",
        "current_jobs",
        "heartbeat_age",
        "expires_at",
        "stop",
    )
    list_editable = ("stop",)
    fields = ("name", "hostname", "pid", "queues", "heartbeat_at", "expires_at", "stop")
    readonly_fields = ("name", "hostname", "pid", "queues", "heartbeat_at", "expires_at")
    actions = ["stop_workers"]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type:
        return CountedChangeList

    def annotate_page(self, workers: list[WorkerStore]) -> None:
        """Set each worker's started jobs and heartbeat age with :func:`pq.sql.worker_states`."""
        with connections[conf.admin_connection()].cursor() as cursor:
            states = {row["name"]: row for row in sql.worker_states(cursor)}
        for worker in workers:
            worker.state = states.get(worker.name, {})

    @admin.display(description="current job")
    def current_jobs(self, worker: WorkerStore) -> str:
        jobs = getattr(worker, "state", {}).get("jobs") or []
        return ", ".join(f"{job['id']} {job['func']}" for job in jobs) or "-"

    @admin.display(description="heartbeat age")
    def heartbeat_age(self, worker: WorkerStore) -> str:
        age = getattr(worker, "state", {}).get("heartbeat_age")
        return "-" if age is None else f"{age:.0f} s"

    @admin.action(description="Stop the selected workers after their current job")
    def stop_workers(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        names = list(queryset.values_list("name", flat=True))
        with connections[conf.admin_connection()].cursor() as cursor:
            stopped = sql.stop_workers(cursor, names)
        self.message_user(request, f"Asked {stopped} worker(s) to stop.")

    def save_model(self, request: HttpRequest, obj: WorkerStore, form: Any, change: bool) -> None:
        """Save only the stop flag, on PQ_ADMIN_CONNECTION (a worker checks it once per job)."""
        WorkerStore.objects.using(conf.admin_connection()).filter(pk=obj.pk).update(stop=obj.stop)
