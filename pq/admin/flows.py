"""The admin's list of flows: progress and current job; a flow's page lists its jobs."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import connections, transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from pq import conf, sql
from pq.admin.base import QueueFilter, ReadOnConnection
from pq.admin.paging import CountedChangeList, EstimatedCountPaginator
from pq.models import FlowStore, Job


class FlowStatusFilter(admin.SimpleListFilter):
    """A flow's status (static choices, never read from the table)."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return FlowStore.STATUS_CHOICES

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset if self.value() is None else queryset.filter(status=self.value())


# The admin list a job of each status is shown in (each lists its statuses only).
_JOB_LIST = {
    "queued": "queuedjob",
    "deferred": "queuedjob",
    "scheduled": "scheduledjob",
    "started": "startedjob",
    "finished": "finishedjob",
    "failed": "failedjob",
}


def _job_link(job_id: int, status: str, text: str) -> str:
    url = reverse(f"admin:pq_{_JOB_LIST[status]}_change", args=[job_id])
    return format_html('<a href="{}">{}</a>', url, text)


@admin.register(FlowStore)
class FlowAdmin(ReadOnConnection):
    """Flows: their progress and current job; the page lists the flow's jobs in order."""

    list_display = ("id", "name", "queue", "status", "progress", "current_job", "created_at")
    list_filter = (FlowStatusFilter, QueueFilter)
    search_fields = ("name",)
    ordering = ("-id",)
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    actions = ["resume_flows", "delete_flows"]
    fields = ("id", "name", "queue", "status", "created_at", "ended_at", "expires_at", "job_table")
    readonly_fields = fields

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type:
        return CountedChangeList

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Django's delete would go through the ORM and strand the flow's deferred jobs: the
        # delete_flows action deletes in SQL (and delete_selected needs this permission).
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def annotate_page(self, flows: list[FlowStore]) -> None:
        """Set each flow's progress with :func:`pq.sql.flow_progress` (one call a page)."""
        with connections[conf.admin_connection()].cursor() as cursor:
            rows = sql.flow_progress(cursor, [flow.pk for flow in flows])
        progress = {row["flow_id"]: row for row in rows}
        for flow in flows:
            flow.progress_row = progress.get(flow.pk, {})

    @admin.display(description="finished")
    def progress(self, flow: FlowStore) -> str:
        finished = getattr(flow, "progress_row", {}).get("finished", 0)
        return f"{finished} of {len(flow.jobs)}"

    @admin.display(description="current job")
    def current_job(self, flow: FlowStore) -> str:
        row = getattr(flow, "progress_row", {})
        if not row.get("current_id"):
            return "-"
        status = row["current_status"]
        return _job_link(row["current_id"], status, f"{row['current_id']} ({status})")

    @admin.display(description="jobs, in the order they run")
    def job_table(self, flow: FlowStore) -> str:
        jobs = {
            job.pk: job
            for job in Job.objects.using(conf.admin_connection()).filter(pk__in=flow.jobs)
        }
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    _job_link(job_id, jobs[job_id].status, str(job_id)),
                    jobs[job_id].func,
                    jobs[job_id].status,
                    jobs[job_id].ended_at or "-",
                )
                if job_id in jobs
                else (job_id, "-", "deleted or expired", "-")
                for job_id in flow.jobs
            ),
        )
        return format_html(
            "<table><tr><th>job</th><th>function</th><th>status</th><th>ended</th></tr>{}</table>",
            rows,
        )

    @admin.action(description="Resume the selected failed flows (requeue their failed job)")
    def resume_flows(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        flow_ids = list(queryset.filter(status="failed").values_list("pk", flat=True))
        failed = Job.objects.using(conf.admin_connection()).filter(
            flow_id__in=flow_ids, status="failed"
        )
        with connections[conf.admin_connection()].cursor() as cursor:
            for job_id in failed.values_list("pk", flat=True):
                sql.requeue(cursor, job_id)
        self.message_user(request, f"Resumed {len(flow_ids)} flow(s).")

    @admin.action(
        description="Delete the selected flows and their jobs (running ones finish)",
        permissions=["remove"],
    )
    def delete_flows(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        flow_ids = list(queryset.values_list("pk", flat=True))
        with (
            transaction.atomic(using=conf.admin_connection()),
            connections[conf.admin_connection()].cursor() as cursor,
        ):
            flows, jobs = sql.delete_flows(cursor, flow_ids)
        self.message_user(request, f"Deleted {flows} flow(s) and {jobs} job(s).")
