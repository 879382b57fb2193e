"""Read pqschedule's command line into the keywords of Queue.schedule_call and Queue.cron.

Values go through pq.scheduling's parsers, so the command takes what Queue.schedule_call
takes; a bad one is a CommandError naming its option. What only SQL checks (timeouts,
queues, cron fields, names) is left to it.
"""

from __future__ import annotations

import contextlib
import re
from datetime import date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.management.base import CommandError
from django.utils import timezone

from pq import scheduling
from pq.management.options import priority_and_retry
from pq.serialization import import_callable

# Options of one form only: (dest, as written), to refuse them with the other forms.
TIMED_ONLY = (
    ("repeat", "--repeat"),
    ("interval", "--interval"),
    ("between", "--between"),
    ("weekdays", "--mo ... --su"),
)
JOB_OPTIONS = (
    ("queue", "--queue"),
    ("serial", "--serial"),
    ("timeout", "--timeout"),
    ("result_ttl", "--result-ttl"),
    ("priority", "--priority"),
    ("retry", "--retry"),
    ("retry_interval", "--retry-interval"),
    ("time_zone", "--time-zone"),
    ("name", "--name"),
)
WHEN_EXAMPLE = "e.g. 2026-01-01 or 2026-01-01T09:10"
# The seed's '2020-01-01T9:10': a one-digit hour right after the date, which fromisoformat
# refuses; it gets its leading zero.
_ONE_DIGIT_HOUR = re.compile(r"^(\d{4}-?\d{2}-?\d{2}[T ])(\d)(?!\d)")


def timed(options: dict[str, Any]) -> dict[str, Any]:
    """Return schedule_call's keywords for ``when func [args]`` and its options."""
    at, func, args = _timed_call(options["call"])
    repeat, interval = _repetition(options["repeat"], options["interval"])
    return {
        "at": at,
        "func": func,
        "args": args,
        "repeat": repeat,
        "interval": interval,
        "between": _between(options["between"]),
        "weekdays": options["weekdays"],
        **_job_options(options),
    }


def cron(options: dict[str, Any]) -> dict[str, Any]:
    """Return cron's keywords for ``--cron EXPR func [args]`` and its options."""
    refuse(options, "--cron")
    func, args = _cron_call(options["call"])
    return {"schedule": options["cron"], "func": func, "args": args, **_job_options(options)}


def refuse(options: dict[str, Any], mode: str) -> None:
    """Raise CommandError for arguments ``mode`` does not take: --list and --unschedule take
    nothing but --connection; --cron takes a call and job options, not the timed form's."""
    alone = mode != "--cron"
    if alone and options["call"]:
        raise CommandError(
            f"pqschedule: {mode} takes no function or time, got {' '.join(options['call'])!r}"
        )
    given = [
        written
        for dest, written in TIMED_ONLY + (JOB_OPTIONS if alone else ())
        if options[dest] not in (None, False)
    ]
    if given:
        what = "takes no job options" if alone else "schedules by the cron expression"
        raise CommandError(
            f"pqschedule: {mode} {what}; drop {', '.join(given)}"
            + ("" if alone else " (or schedule at a time instead of --cron)")
        )


def _timed_call(words: list[str]) -> tuple[datetime | date, str, list[str]]:
    """Read ``when func [args]``: 'now' or an ISO 8601 date (its midnight) or datetime
    (naive: in the current time zone), then the function and its arguments."""
    if not words:
        raise CommandError(
            "pqschedule: say when and what to run: pqschedule now|ISO8601 dotted.func "
            f"[args ...] ({WHEN_EXAMPLE}), or use --cron, --list or --unschedule NAME"
        )
    when = words[0]
    at = timezone.now() if _is_now(when) else _iso(when)
    if at is None:
        raise CommandError(
            f"pqschedule: {when!r} is not 'now' or an ISO 8601 date or datetime "
            f"({WHEN_EXAMPLE}); write when to run first: pqschedule now|ISO8601 dotted.func"
        )
    return (at, *_function(words[1:], when))


def _cron_call(words: list[str]) -> tuple[str, list[str]]:
    """Read ``func [args]`` after --cron, refusing a time (the expression says when)."""
    if words and (_is_now(words[0]) or _iso(words[0]) is not None):
        raise CommandError(
            f"pqschedule: --cron runs at the ticks of its expression; drop the time "
            f"{words[0]!r}: pqschedule --cron EXPR dotted.func [args ...]"
        )
    return _function(words, None)


def _repetition(
    repeat_text: str | None, interval_text: str | None
) -> tuple[int | datetime | date, float | None]:
    """Read --repeat and --interval, which come together."""
    repeat, interval = _repeat(repeat_text), _interval(interval_text)
    if repeat != 0 and interval is None:
        raise CommandError(
            f"pqschedule: --repeat {repeat_text} needs --interval SECONDS, the time "
            "between runs (e.g. --interval 86400 for daily)"
        )
    if interval is not None and repeat == 0:
        raise CommandError(
            f"pqschedule: --interval {interval_text} without --repeat would run the "
            "job once; add --repeat N (N more runs), --repeat -1 (for ever) or "
            "--repeat ISO8601 (until then)"
        )
    return repeat, interval


def _between(text: str | None) -> str | None:
    """Check --between as schedule_call will read it, to name the option in the error."""
    if text is not None:
        try:
            scheduling.parse_between(text)
        except ValueError as exc:  # "between '2-25': the end hour 25 is not 0-23"
            raise CommandError(f"pqschedule: --{exc}") from exc
    return text


def zone(name: str | None) -> tzinfo | None:
    """Read --time-zone: an IANA zone name, or None for Django's current time zone."""
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CommandError(
            f"pqschedule: --time-zone {name!r} is not a time zone; use an IANA name such as "
            "Europe/Paris, America/New_York or UTC"
        ) from None


def _job_options(options: dict[str, Any]) -> dict[str, Any]:
    given = {key: options[key] for key in ("name", "timeout", "result_ttl")}
    return {**given, **priority_and_retry(options)}


def _is_now(text: str) -> bool:
    return text.strip().lower() == "now"


def _iso(text: str) -> datetime | date | None:
    """Return the ISO 8601 date or datetime ``text``, or None if it is neither."""
    value = _ONE_DIGIT_HOUR.sub(r"\g<1>0\g<2>", text.strip())
    for parse in (date.fromisoformat, datetime.fromisoformat):
        try:
            return parse(value)
        except ValueError:
            pass
    return None


def _function(words: list[str], when: str | None) -> tuple[str, list[str]]:
    """Return the function's path and its arguments, after importing it (as a worker will:
    a typo fails now, not at the first run)."""
    if not words:
        raise CommandError(
            f"pqschedule: which function to run{'' if when is None else ' ' + repr(when)}? "
            f"write pqschedule {'--cron EXPR' if when is None else when} dotted.func [args ...]"
        )
    func = words[0]
    try:
        import_callable(func)
    except Exception as exc:
        raise CommandError(
            f"pqschedule: cannot schedule {func} ({type(exc).__name__}: {exc}); a worker "
            "would fail the job the same way: check the path, and that this project's "
            "settings can import it"
        ) from exc
    return func, list(words[1:])


def _repeat(text: str | None) -> int | datetime | date:
    """Read --repeat: N more runs, -1 for ever, or an ISO 8601 date or datetime to repeat until."""
    if text is None:
        return 0
    value: int | datetime | date | None
    try:
        value = int(text)
    except ValueError:
        value = _iso(text)
    if value is not None:
        with contextlib.suppress(ValueError):  # parse_repeat refuses counts under -1
            scheduling.parse_repeat(value)
            return value
    raise CommandError(
        f"pqschedule: --repeat {text!r} is not a number of repeats (N more runs, -1 for "
        "ever) nor an ISO 8601 date or datetime to repeat until (e.g. --repeat 10 or "
        "--repeat 2026-12-31)"
    )


def _interval(text: str | None) -> float | None:
    """Read --interval: seconds, at least 1."""
    if text is None:
        return None
    try:
        seconds = float(text)
        if scheduling.interval_text(seconds) is not None:  # None: 0, no interval
            return seconds
    except (ValueError, OverflowError):  # not a number, NaN, infinite or under a second
        pass
    raise CommandError(
        f"pqschedule: --interval {text!r} is not a time between runs; give a number of "
        "seconds of at least 1 (e.g. --interval 3600 for hourly, 86400 for daily)"
    )
