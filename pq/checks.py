"""System checks for django-pq's settings (ids pq.E001...)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from pq import conf

_INTEGER_SETTINGS = {
    # name: (check id, lowest allowed value, what the value means). Ids are fixed: adding a
    # setting takes the next free id and never renumbers the others.
    "PQ_DEFAULT_RESULT_TTL": (
        "pq.E001",
        -1,
        "seconds to keep results; 0 deletes at once, -1 keeps forever",
    ),
    "PQ_DEFAULT_WORKER_TTL": ("pq.E002", 1, "seconds an idle worker waits before polling"),
    "PQ_DEFAULT_JOB_TIMEOUT": ("pq.E003", 1, "seconds a job may run"),
}
_BOOLEAN_SETTINGS = {  # name: what True means (check id pq.E006 for each)
    "PQ_QUEUE_CACHE": "Queue.create() returns cached Queue objects",
    "PQ_HUGE_PAGES": "forking workers back their heap with huge pages",
}


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Report PQ_* settings of the wrong type or range, and connections that are not PostgreSQL."""
    errors: list[checks.CheckMessage] = []
    for name, (check_id, lowest, meaning) in _INTEGER_SETTINGS.items():
        value = conf.get(name)
        if type(value) is not int or value < lowest:
            errors.append(
                checks.Error(
                    f"{name} is {value!r}; it must be a whole number of at least {lowest}.",
                    hint=f"Set {name} to {meaning}, e.g. {conf.DEFAULTS[name]}.",
                    id=check_id,
                )
            )
    for name, meaning in _BOOLEAN_SETTINGS.items():
        value = conf.get(name)
        if type(value) is not bool:
            errors.append(
                checks.Error(
                    f"{name} is {value!r}; it must be True or False.",
                    hint=f"Set {name} = True ({meaning}) or False.",
                    id="pq.E006",
                )
            )
    alias = conf.get("PQ_ADMIN_CONNECTION")
    if alias not in settings.DATABASES:
        errors.append(
            checks.Error(
                f"PQ_ADMIN_CONNECTION is {alias!r}, which is not in DATABASES.",
                hint=f"Use one of: {', '.join(sorted(settings.DATABASES))}.",
                id="pq.E004",
            )
        )
    elif "postgresql" not in settings.DATABASES[alias].get("ENGINE", ""):
        errors.append(_not_postgres(alias, "pq.E005"))
    if (
        "default" in settings.DATABASES
        and "postgresql" not in settings.DATABASES["default"].get("ENGINE", "")
        and alias != "default"
    ):
        errors.append(_not_postgres("default", "pq.W001", warning=True))
    return errors


def _not_postgres(alias: str, check_id: str, warning: bool = False) -> checks.CheckMessage:
    engine = settings.DATABASES[alias].get("ENGINE", "")
    kind = checks.Warning if warning else checks.Error
    return kind(
        f"Database {alias!r} uses {engine!r}; django-pq needs PostgreSQL.",
        hint="Use ENGINE 'django.db.backends.postgresql' for the databases pq queues live in.",
        id=check_id,
    )
