"""Check the test harness itself: server, fixtures, DSN conversion."""

from __future__ import annotations

from psycopg2.extensions import TRANSACTION_STATUS_IDLE, connection, parse_dsn

from pq.testing import dsn_to_django


def test_server_is_postgresql_13_or_newer(raw_conn: connection) -> None:
    with raw_conn.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        (version,) = cursor.fetchone()
    assert int(version) >= 130000


def test_raw_conn_is_autocommit(raw_conn: connection, dsn: str) -> None:
    assert raw_conn.autocommit
    assert raw_conn.get_dsn_parameters()["dbname"] == parse_dsn(dsn)["dbname"]
    with raw_conn.cursor() as cursor:
        cursor.execute("SELECT 1")
    # Without autocommit, psycopg2 would have opened a transaction and left it open.
    assert raw_conn.info.transaction_status == TRANSACTION_STATUS_IDLE


def test_dsn_to_django_parses_url_and_keywords() -> None:
    url = "postgresql://alice:s%40cret@db.example:6543/jobs?sslmode=require"
    assert dsn_to_django(url) == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "jobs",
        "USER": "alice",
        "PASSWORD": "s@cret",
        "HOST": "db.example",
        "PORT": "6543",
        "OPTIONS": {"sslmode": "require"},
    }
    keywords = dsn_to_django("host=127.0.0.1 port=5432 user=postgres dbname=test")
    assert keywords["NAME"] == "test"
    assert keywords["HOST"] == "127.0.0.1"
    assert keywords["PORT"] == "5432"
    assert keywords["USER"] == "postgres"
    assert keywords["PASSWORD"] == ""
    assert keywords["OPTIONS"] == {}
