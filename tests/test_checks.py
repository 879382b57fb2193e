"""System checks of the PQ_* settings (``manage.py check``), ids pq.E001..."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

SQLITE = {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}


def pq_messages(**overrides: Any) -> list[checks.CheckMessage]:
    """Run every system check with ``overrides`` and return django-pq's messages."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Overriding setting DATABASES can lead to..."
        with override_settings(**overrides):
            found = checks.run_checks()
    return [message for message in found if (message.id or "").startswith("pq.")]


def only(messages: list[checks.CheckMessage]) -> checks.CheckMessage:
    assert len(messages) == 1, messages
    return messages[0]


@pytest.fixture
def databases() -> Iterator[dict[str, dict[str, Any]]]:
    """A copy of DATABASES to change in a test."""
    yield {alias: dict(config) for alias, config in settings.DATABASES.items()}


def test_the_test_settings_pass() -> None:
    assert pq_messages() == []


def test_valid_settings_pass() -> None:
    assert (
        pq_messages(
            PQ_DEFAULT_RESULT_TTL=-1,
            PQ_DEFAULT_WORKER_TTL=1,
            PQ_DEFAULT_JOB_TIMEOUT=3600,
            PQ_ADMIN_CONNECTION="other",
            PQ_QUEUE_CACHE=False,
            PQ_HUGE_PAGES=False,
        )
        == []
    )
    assert pq_messages(PQ_DEFAULT_RESULT_TTL=0) == []


@pytest.mark.parametrize(
    ("value", "shown"), [(-2, "-2"), ("abc", "'abc'"), (1.5, "1.5"), (None, "None")]
)
def test_bad_result_ttl_is_e001(value: object, shown: str) -> None:
    error = only(pq_messages(PQ_DEFAULT_RESULT_TTL=value))
    assert error.id == "pq.E001"
    assert error.level == checks.ERROR
    assert error.msg == (
        f"PQ_DEFAULT_RESULT_TTL is {shown}; it must be a whole number of at least -1."
    )
    assert "PQ_DEFAULT_RESULT_TTL" in error.hint and "500" in error.hint


@pytest.mark.parametrize("value", [0, -1, "60", True])
def test_bad_worker_ttl_is_e002(value: object) -> None:
    error = only(pq_messages(PQ_DEFAULT_WORKER_TTL=value))
    assert error.id == "pq.E002"
    assert error.msg.startswith(f"PQ_DEFAULT_WORKER_TTL is {value!r};")
    assert "at least 1" in error.msg
    assert "420" in error.hint


@pytest.mark.parametrize("value", [0, -600, "600", 10.0])
def test_bad_job_timeout_is_e003(value: object) -> None:
    error = only(pq_messages(PQ_DEFAULT_JOB_TIMEOUT=value))
    assert error.id == "pq.E003"
    assert error.level == checks.ERROR
    assert error.msg == (
        f"PQ_DEFAULT_JOB_TIMEOUT is {value!r}; it must be a whole number of at least 1."
    )
    assert "600" in error.hint


def test_unknown_admin_connection_is_e004() -> None:
    error = only(pq_messages(PQ_ADMIN_CONNECTION="nope"))
    assert error.id == "pq.E004"
    assert error.level == checks.ERROR
    assert error.msg == "PQ_ADMIN_CONNECTION is 'nope', which is not in DATABASES."
    assert error.hint == "Use one of: default, other."


def test_admin_connection_that_is_not_postgresql_is_e005(
    databases: dict[str, dict[str, Any]],
) -> None:
    databases["lite"] = SQLITE
    error = only(pq_messages(DATABASES=databases, PQ_ADMIN_CONNECTION="lite"))
    assert error.id == "pq.E005"
    assert error.level == checks.ERROR
    assert "'lite'" in error.msg and "sqlite3" in error.msg and "PostgreSQL" in error.msg
    assert "django.db.backends.postgresql" in error.hint


def test_default_connection_that_is_not_postgresql_is_a_warning(
    databases: dict[str, dict[str, Any]],
) -> None:
    databases["pg"] = databases["default"]
    databases["default"] = SQLITE
    warning = only(pq_messages(DATABASES=databases, PQ_ADMIN_CONNECTION="pg"))
    assert warning.id == "pq.W001"
    assert warning.level == checks.WARNING
    assert "'default'" in warning.msg and "sqlite3" in warning.msg


def test_default_sqlite_as_admin_connection_is_one_error(
    databases: dict[str, dict[str, Any]],
) -> None:
    databases["default"] = SQLITE
    error = only(pq_messages(DATABASES=databases))
    assert error.id == "pq.E005"


def test_every_bad_setting_is_reported() -> None:
    found = pq_messages(
        PQ_DEFAULT_RESULT_TTL=-2,
        PQ_DEFAULT_WORKER_TTL=0,
        PQ_DEFAULT_JOB_TIMEOUT=0,
        PQ_ADMIN_CONNECTION="nope",
    )
    assert sorted(message.id for message in found) == ["pq.E001", "pq.E002", "pq.E003", "pq.E004"]


def test_manage_py_check_fails_on_a_bad_setting() -> None:
    with override_settings(PQ_DEFAULT_JOB_TIMEOUT=0), pytest.raises(SystemCheckError) as caught:
        call_command("check")
    assert "pq.E003" in str(caught.value)
    assert "PQ_DEFAULT_JOB_TIMEOUT is 0" in str(caught.value)


def test_manage_py_check_passes_with_the_test_settings(capsys: pytest.CaptureFixture) -> None:
    call_command("check")
    assert "no issues" in capsys.readouterr().out


def test_check_ids_are_fixed_per_setting() -> None:
    from pq.checks import _INTEGER_SETTINGS

    assert {name: spec[0] for name, spec in _INTEGER_SETTINGS.items()} == {
        "PQ_DEFAULT_RESULT_TTL": "pq.E001",
        "PQ_DEFAULT_WORKER_TTL": "pq.E002",
        "PQ_DEFAULT_JOB_TIMEOUT": "pq.E003",
    }


@pytest.mark.parametrize("name", ["PQ_QUEUE_CACHE", "PQ_HUGE_PAGES"])
@pytest.mark.parametrize(("value", "shown"), [("no", "'no'"), (0, "0"), (None, "None")])
def test_a_boolean_setting_that_is_not_a_bool_is_e006(name: str, value: object, shown: str) -> None:
    error = only(pq_messages(**{name: value}))
    assert error.id == "pq.E006"
    assert error.level == checks.ERROR
    assert error.msg == f"{name} is {shown}; it must be True or False."
    assert error.hint.startswith(f"Set {name} = True (")
