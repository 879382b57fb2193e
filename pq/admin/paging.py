"""The admin's job lists at any table size: a bounded count, a cheap date hierarchy.

Lists of jobs never count a whole status: :class:`EstimatedCountPaginator` counts up to a
bound (in rows and in time) and asks the planner beyond it; their date hierarchy reads no
job but the oldest and newest ones (:class:`JobChangeList`). ``bench/admin_changelist.py``
times every list at 1,000 and 1,000,000 jobs.
"""

from __future__ import annotations

import calendar
import datetime
import functools
from typing import Any

from django.conf import settings
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import OperationalError, connections, transaction
from django.db.models import Max, Min, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property

from pq import sql


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


class CountedChangeList(ChangeList):
    """A changelist whose page's rows get extra values from one SQL call (few rows a page)."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        self.model_admin.annotate_page(list(self.result_list))
