"""The PostgreSQL limit: one job's life as pgbench scripts, with no Python in the way.

Each script run is one job's life in three transactions (insert; claim with FOR UPDATE SKIP
LOCKED; finish), or 100 jobs' in the batch scripts. ``pgbench_job*.sql`` are plain SQL on
``pqbench_job``, a copy of pq_job (same columns, checks and indexes; no trigger, so no
NOTIFY); ``pgbench_pq*.sql`` call django-pq's functions on pq_job itself. Both tables are
prefilled so a claim always finds a job.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import psycopg2
from psycopg2.extensions import parse_dsn

from bench.context import Context
from bench.figures import Figure

SECTION = "pgbench"
HERE = Path(__file__).resolve().parent
SCRIPTS = [
    ("plain SQL job life", "pgbench_job.sql", 1),
    ("plain SQL, batches of 100", "pgbench_job_batch.sql", 100),
    ("pq_enqueue/pq_dequeue/pq_finish", "pgbench_pq.sql", 1),
    ("pq_enqueue_many/pq_dequeue_many/pq_finish_many, 100", "pgbench_pq_batch.sql", 100),
]
SETUP = [
    "DROP TABLE IF EXISTS pqbench_job",
    "CREATE TABLE pqbench_job (LIKE pq_job INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
    " INCLUDING INDEXES)",
    "INSERT INTO pqbench_job (queue, origin, func, result_ttl)"
    " SELECT 'pgbench', 'pgbench', 'pq.utils.do_nothing', 0 FROM generate_series(1, 1000)",
    "SELECT pq_enqueue('pgbench', 'pq.utils.do_nothing', '[0]', '{}', NULL, 0)"
    " FROM generate_series(1, 1000)",
    "VACUUM ANALYZE pqbench_job",
    "VACUUM ANALYZE pq_job",
    # pgbench's clients claim as workers pgbench.0 to pgbench.3: only registered workers
    # get jobs (PQ006). Registered for an hour; unregistered below.
    "SELECT pq_register_worker('pgbench.' || n, NULL, 3600) FROM generate_series(0, 3) AS n",
]
TEARDOWN = [
    "DROP TABLE IF EXISTS pqbench_job",
    "SELECT pq_unregister_worker('pgbench.' || n) FROM generate_series(0, 3) AS n",
    "DELETE FROM pq_job WHERE origin = 'pgbench'",
    "VACUUM ANALYZE pq_job",
]


def find_pgbench() -> str | None:
    """Return pgbench's path: on PATH, else beside the server pq.testing uses."""
    found = shutil.which("pgbench")
    if found:
        return found
    from pq.testing import find_postgres_bin

    try:
        candidate = find_postgres_bin() / "pgbench"
    except RuntimeError:
        return None
    return str(candidate) if candidate.exists() else None


def run(ctx: Context) -> None:
    pgbench = find_pgbench()
    if pgbench is None:
        ctx.note("pgbench not found (Debian: apt-get install postgresql-client): section skipped")
        return
    seconds = 2 if ctx.quick else 5
    _execute(ctx.dsn, SETUP)
    try:
        for name, script, per_run in SCRIPTS:
            if script == "pgbench_pq_batch.sql" and not _has_function(ctx.dsn, "pq_enqueue_many"):
                ctx.note(f"pgbench {script} skipped: this django-pq has no pq_enqueue_many")
                continue
            for clients in (1, 4):
                tps = _pgbench(pgbench, ctx.dsn, HERE / script, clients, seconds)
                figure = ctx.add(
                    Figure(
                        SECTION,
                        name,
                        "rate",
                        tps * per_run,
                        "jobs/s",
                        workers=clients,
                        seconds=seconds,
                        note=f"{script}: {tps:,.1f} script runs/s, {per_run} job(s) each",
                    )
                )
                ctx.log(f"pgbench: {name}, -c {clients}: {figure.value:,.0f} jobs/s")
    finally:
        _execute(ctx.dsn, TEARDOWN)


def _pgbench(pgbench: str, dsn: str, script: Path, clients: int, seconds: int) -> float:
    params = parse_dsn(dsn)
    command = [
        pgbench,
        "--no-vacuum",
        "--protocol=prepared",
        f"--client={clients}",
        f"--jobs={clients}",
        f"--time={seconds}",
        f"--file={script}",
        f"--host={params['host']}",
        f"--port={params['port']}",
        f"--username={params['user']}",
        params["dbname"],
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    match = re.search(r"^tps = ([\d.]+)", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None or "aborted" in done.stderr:
        raise RuntimeError(
            f"pgbench {script.name} -c {clients} failed:\n{done.stdout}{done.stderr}"
        )
    return float(match.group(1))


def _execute(dsn: str, statements: list[str]) -> None:
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        conn.close()


def _has_function(dsn: str, name: str) -> bool:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = %s)", [name])
            return bool(cursor.fetchone()[0])
    finally:
        conn.close()
