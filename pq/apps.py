from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings


class PQConfig(AppConfig):
    name = "pq"
    verbose_name = "PQ task queue"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from pq import checks  # noqa: F401  (registers the system checks)

        # A site whose TASKS use pq's backend: import it now, so that the tasks framework's
        # system checks (and the backend's check()) run with `manage.py check`, and a site
        # without Django Tasks learns it at start, in one line, not at its first enqueue.
        backends = getattr(settings, "TASKS", {}).values()
        if any(backend.get("BACKEND") == "pq.tasks.PQBackend" for backend in backends):
            import pq.tasks  # noqa: F401
