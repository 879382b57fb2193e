"""Command-line options the management commands share."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.db import connections

from pq.retry import Retry


def database_alias(options: dict[str, Any]) -> str:
    """Return the ``--connection`` alias; CommandError if settings.DATABASES lacks it."""
    alias = options["connection"]
    if alias not in connections.settings:
        raise CommandError(
            f"--connection {alias!r} is not in settings.DATABASES "
            f"(known: {', '.join(sorted(connections.settings))})"
        )
    return str(alias)


def add_priority_and_retry(parser: Any) -> None:
    """Add --priority, --retry MAX and --retry-interval SECONDS... to a parser or group."""
    parser.add_argument(
        "--priority", "-p", type=int, help="-100 to 100, higher runs first (default 0)"
    )
    parser.add_argument("--retry", type=int, metavar="MAX", help="retry a failed run MAX times")
    parser.add_argument(
        "--retry-interval",
        type=int,
        nargs="+",
        metavar="SECONDS",
        help="seconds before each retry, e.g. 10 30 60 (the last repeats; default 0)",
    )


def priority_and_retry(options: dict[str, Any]) -> dict[str, Any]:
    """The ``priority`` and ``retry`` keywords of the options added by add_priority_and_retry;
    CommandError for a bad one."""
    if options["retry_interval"] and options["retry"] is None:
        raise CommandError("--retry-interval needs --retry MAX, the number of retries")
    priority = 0 if options["priority"] is None else options["priority"]
    try:
        retry = None
        if options["retry"] is not None:
            retry = Retry(max=options["retry"], interval=options["retry_interval"] or 0)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    return {"priority": priority, "retry": retry}
