"""django-pq in Django's admin: lists of jobs by state, flows, named schedules, queues and
workers, read on PQ_ADMIN_CONNECTION.

Writes go through :mod:`pq.sql` (requeue, delete, run now, stop, unschedule), never model
saves. Each module registers its lists: :mod:`pq.admin.jobs`, :mod:`pq.admin.flows`,
:mod:`pq.admin.schedules`, :mod:`pq.admin.queues`; :mod:`pq.admin.paging` keeps the job
lists fast on a table of millions of jobs.
"""

from __future__ import annotations

from pq.admin import flows, jobs, queues, schedules
from pq.admin.paging import EstimatedCountPaginator

__all__ = ["EstimatedCountPaginator", "flows", "jobs", "queues", "schedules"]
