"""Jobs, where RQ users look for them: ``from pq.job import Job`` (also ``from pq import Job``).

The model lives in :mod:`pq.models`; this module names it as RQ's ``rq.job`` does.
"""

from __future__ import annotations

from pq.models import Job, JobStatus

__all__ = ["Job", "JobStatus"]
