"""Admin lists of queued, dequeued and failed jobs, queues and workers (PQ_ADMIN_CONNECTION)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest

from pq import conf, sql
from pq.exceptions import PQError
from pq.models import DequeuedJob, FailedJob, QueuedJob, QueueStore, WorkerStore


class ReadOnConnection(admin.ModelAdmin):
    """Read the admin's rows on the PQ_ADMIN_CONNECTION database."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).using(conf.admin_connection())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class JobAdmin(ReadOnConnection):
    list_display = ("id", "func", "queue", "origin", "status", "enqueued_at", "ended_at", "worker")
    list_filter = ("origin", "status")
    search_fields = ("func", "description")
    readonly_fields = [f.name for f in QueuedJob._meta.fields]
    statuses: tuple[str, ...] = ()

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).filter(status__in=self.statuses)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(QueuedJob)
class QueuedJobAdmin(JobAdmin):
    statuses = ("queued", "scheduled", "deferred")
    list_display = ("id", "func", "queue", "status", "enqueued_at", "scheduled_for")


@admin.register(DequeuedJob)
class DequeuedJobAdmin(JobAdmin):
    statuses = ("started", "finished")


@admin.register(FailedJob)
class FailedJobAdmin(JobAdmin):
    statuses = ("failed",)
    actions = ["requeue"]
    list_display = ("id", "func", "origin", "ended_at", "worker")

    @admin.action(description="Requeue the selected jobs on their origin queues")
    def requeue(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        done = 0
        with connections[conf.admin_connection()].cursor() as cursor:
            for job_id in queryset.values_list("id", flat=True):
                try:
                    sql.requeue(cursor, job_id)
                    done += 1
                except PQError as exc:
                    self.message_user(request, f"Job {job_id}: {exc}", messages.ERROR)
        self.message_user(request, f"Requeued {done} job(s).")


@admin.register(QueueStore)
class QueueAdmin(ReadOnConnection):
    list_display = ("name", "serial", "default_timeout", "created_at")


@admin.register(WorkerStore)
class WorkerAdmin(ReadOnConnection):
    list_display = ("name", "hostname", "pid", "queues", "heartbeat_at", "expires_at", "stop")
    list_editable = ("stop",)
    fields = ("name", "hostname", "pid", "queues", "heartbeat_at", "expires_at", "stop")
    readonly_fields = ("name", "hostname", "pid", "queues", "heartbeat_at", "expires_at")

    def save_model(self, request: HttpRequest, obj: WorkerStore, form: Any, change: bool) -> None:
        """Save only the stop flag, on PQ_ADMIN_CONNECTION (a worker checks it once per job)."""
        WorkerStore.objects.using(conf.admin_connection()).filter(pk=obj.pk).update(stop=obj.stop)
