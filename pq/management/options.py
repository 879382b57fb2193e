"""Command-line options the management commands share."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.db import connections


def database_alias(options: dict[str, Any]) -> str:
    """Return the ``--connection`` alias; CommandError if settings.DATABASES lacks it."""
    alias = options["connection"]
    if alias not in connections.settings:
        raise CommandError(
            f"--connection {alias!r} is not in settings.DATABASES "
            f"(known: {', '.join(sorted(connections.settings))})"
        )
    return str(alias)
