"""The admin's list of named schedules (cron and named repeating jobs): pq_schedules."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest

from pq import conf, sql
from pq.admin.base import QueueFilter, ReadOnConnection
from pq.models import Schedule


@admin.register(Schedule)
class ScheduleAdmin(ReadOnConnection):
    """Named schedules (cron and named repeating jobs): the view pq_schedules."""

    list_display = (
        "name",
        "schedule",
        "time_zone",
        "queue",
        "func",
        "next_run",
        "last_run",
        "last_status",
        "priority",
    )
    list_filter = (QueueFilter,)
    search_fields = ("name", "func")
    ordering = ("name",)
    actions = ["run_now", "unschedule"]
    fields = list_display + (
        "max_retries",
        "retry_intervals",
        "args",
        "kwargs",
        "next_job_id",
        "last_job_id",
    )
    readonly_fields = fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A view: unschedule instead (delete_selected needs this permission).
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Run the next run of the selected schedules now")
    def run_now(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        job_ids = list(queryset.values_list("next_job_id", flat=True))
        with connections[conf.admin_connection()].cursor() as cursor:
            count = sql.run_now(cursor, job_ids)
        self.message_user(request, f"{count} run(s) made due now.")

    @admin.action(
        description="Unschedule the selected schedules (a running run goes on)",
        permissions=["remove"],
    )
    def unschedule(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        names = list(queryset.values_list("name", flat=True))
        with connections[conf.admin_connection()].cursor() as cursor:
            removed = sum(sql.unschedule(cursor, name) for name in names)
        self.message_user(request, f"Unscheduled {removed} schedule(s).")
