"""Settings for ``django-admin check`` runs of tests/test_tasks.py: tests.settings with a
misconfigured pq.tasks backend, picked by ``PQ_TEST_TASKS_CASE``."""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, TASKS

_CASE = os.environ.get("PQ_TEST_TASKS_CASE", "")

DATABASES = {**DATABASES, "lite": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
if _CASE != "no-pq":
    INSTALLED_APPS.append("pq")

_BACKEND = dict(TASKS["default"])
if _CASE == "sqlite":
    _BACKEND["OPTIONS"] = {"connection": "lite"}
TASKS = {"default": _BACKEND}
