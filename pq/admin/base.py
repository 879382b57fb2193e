"""What every django-pq admin list shares: reading on PQ_ADMIN_CONNECTION, the filters."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import Lookup, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from pq import conf
from pq.models import (
    QueueStore,
)


class ReadOnConnection(admin.ModelAdmin):
    """Read the admin's rows on the PQ_ADMIN_CONNECTION database."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).using(conf.admin_connection())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_remove_permission(self, request: HttpRequest) -> bool:
        """Whether the user may delete rows with the list's SQL action (delete_jobs,
        delete_flows, unschedule): Django's delete permission on the list's model."""
        return admin.ModelAdmin.has_delete_permission(self, request)


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


def pretty_json(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, default=repr))


class ILike(Lookup):
    """``lhs ILIKE rhs``: a case-insensitive LIKE the planner estimates from the column's
    statistics (used directly in ``filter()``, not registered on any field)."""

    lookup_name = "pq_ilike"

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} ILIKE {rhs}", [*lhs_params, *rhs_params]
