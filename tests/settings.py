"""Django settings for the test suite.

``tests/conftest.py`` creates the test database and exports its libpq DSN as
``PQ_TEST_DATABASE_DSN`` before ``django.setup()``; subprocesses started by tests
inherit it, so ``DJANGO_SETTINGS_MODULE=tests.settings`` works there too.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

from pq.testing import dsn_to_django

try:
    _DSN = os.environ["PQ_TEST_DATABASE_DSN"]
except KeyError:
    raise ImproperlyConfigured(
        "PQ_TEST_DATABASE_DSN is not set: run the tests with `python -m pytest`, whose "
        "tests/conftest.py creates the database (set PQ_TEST_DSN to use your own server)."
    ) from None

SECRET_KEY = "django-pq-tests-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASES = {
    "default": dsn_to_django(_DSN),
    "other": dsn_to_django(_DSN),  # same database, second connection: Queue(connection="other")
}

# The poll interval of worker subprocesses, for tests that need a short one (PgBouncer):
# unset, PQ_DEFAULT_WORKER_TTL keeps its default (420 s), so no other test sees a poll.
if os.environ.get("PQ_TEST_WORKER_TTL"):
    PQ_DEFAULT_WORKER_TTL = int(os.environ["PQ_TEST_WORKER_TTL"])

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "pq",
    "tests",
]

# Django Tasks (Django 6, or the django-tasks backport) run by pq: tests/test_tasks.py.
TASKS = {"default": {"BACKEND": "pq.tasks.PQBackend", "QUEUES": ["default", "emails"]}}

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "loggers": {
        # propagate so that pytest's caplog also sees pq records
        "pq": {"handlers": ["console"], "level": "INFO", "propagate": True},
    },
}
