from __future__ import annotations

from django.apps import AppConfig


class PQConfig(AppConfig):
    name = "pq"
    verbose_name = "PQ task queue"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from pq import checks  # noqa: F401  (registers the system checks)
