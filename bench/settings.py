"""Django settings for the worker commands ``python -m bench`` starts (pqworker, rqworker).

The benchmark sets ``PQ_BENCH_DSN`` (its throwaway cluster) and ``PQ_BENCH_REDIS_URL`` (its
throwaway Redis, when RQ is measured) in the environment of each worker it starts with
``DJANGO_SETTINGS_MODULE=bench.settings``. The ``pq``, ``rq.worker`` and ``rq.job`` loggers are
at WARNING, as in the benchmark's own process: no worker writes a log line per job.
"""

from __future__ import annotations

import os
from importlib.util import find_spec

from pq.testing import dsn_to_django

DSN_ENV = "PQ_BENCH_DSN"
REDIS_URL_ENV = "PQ_BENCH_REDIS_URL"
QUEUE = "pqbenchmark"  # pq.benchmark.QUEUE, without importing it before Django is set up

SECRET_KEY = "pq-bench-not-secret"  # noqa: S105 (a throwaway benchmark site)
USE_TZ = True
DATABASES = {"default": dsn_to_django(os.environ[DSN_ENV])} if DSN_ENV in os.environ else {}
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "pq"]
if find_spec("django_rq") is not None:
    INSTALLED_APPS.append("django_rq")
RQ_QUEUES = {QUEUE: {"URL": os.environ.get(REDIS_URL_ENV, "redis://localhost:6379/0")}}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"standard": {"format": "[%(levelname)s] %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "standard"}},
    "loggers": {
        name: {"handlers": ["console"], "level": "WARNING", "propagate": False}
        for name in ("pq", "rq.worker", "rq.job")
    },
}
