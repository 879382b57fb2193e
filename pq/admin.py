"""Admin lists of jobs by state, queues and workers, read on PQ_ADMIN_CONNECTION.

Writes go through :mod:`pq.sql` (requeue, delete, run now, stop), never model saves. Lists
of jobs never count a whole status: :class:`EstimatedCountPaginator` counts up to a bound
and asks the planner beyond it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.html import format_html

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

    The exact count reads at most ``exact_up_to + 1`` rows (a LIMIT in a subquery), so a page
    of a big pq_job costs no scan of a whole status; past the bound the page links are
    approximate.
    """

    exact_up_to = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        bounded = queryset[: self.exact_up_to + 1].count()
        if bounded <= self.exact_up_to:
            return bounded
        with connections[queryset.db].cursor() as cursor:
            if queryset.query.where:
                query, params = queryset.query.get_compiler(using=queryset.db).as_sql()
                estimate = sql.estimated_rows(cursor, query, params)
            else:
                estimate = sql.estimated_table_rows(cursor, queryset.model._meta.db_table)
        return max(bounded, estimate)


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
        return super().get_queryset(request).filter(status__in=self.statuses)

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
    ordering = ("id",)


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
