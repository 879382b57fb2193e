"""The admin's lists of queues (with their counts) and workers (current job, heartbeat)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest

from pq import conf, sql
from pq.admin.base import ReadOnConnection
from pq.admin.paging import CountedChangeList
from pq.models import (
    QueueStore,
    WorkerStore,
)


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
