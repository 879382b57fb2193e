"""Chaos: workers and horses SIGKILLed at random and PostgreSQL restarted mid-run.

The promise under test (README, Workers): a job runs at most once per start; a job whose
worker or horse dies is failed (never silently rerun, never left 'started'); no enqueued job
is lost. The test runs its own cluster, so that it can restart it, and real forking worker
processes with a short heartbeat, and reports lost, stuck and run-twice counts: all zero.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from pq.testing import TemporaryPostgres
from tests.workerprocs import ROOT, descendants, kill_hard, pid_alive, worker_env

WORKERS = 3
HEARTBEAT = 0.5  # a worker's TTL is 3 heartbeats: 1.5 s, rounded up to 2 s
CHAOS_SECONDS = 20.0
BATCH = 10  # jobs enqueued per chaos step
SETTLE_SECONDS = 60.0
QUEUE = "chaos"
SEED = int(os.environ.get("PQ_CHAOS_SEED", "0")) or random.randrange(1, 10**6)


@pytest.fixture
def cluster() -> Iterator[TemporaryPostgres]:
    """A cluster of the test's own, migrated, that the test may restart."""
    with TemporaryPostgres() as server:
        env = {**worker_env(), "PQ_TEST_DATABASE_DSN": server.dsn}
        subprocess.run(
            [sys.executable, "-m", "django", "migrate", "-v0"], cwd=ROOT, env=env, check=True
        )
        yield server


class Workers:
    """Forking worker subprocesses on the chaos cluster, started and killed by the test."""

    def __init__(self, dsn: str, directory: Path, horse_jobs: int) -> None:
        self.env = {**worker_env(), "PQ_TEST_DATABASE_DSN": dsn}
        self.horse_jobs = horse_jobs
        self.directory = directory
        self.processes: list[subprocess.Popen[bytes]] = []
        self.started = 0

    def start(self) -> None:
        self.started += 1
        name = f"chaos-{self.started}"
        code = (
            "import django\n"
            "django.setup()\n"
            "from pq.worker import Worker\n"
            f"Worker([{QUEUE!r}], name={name!r}, heartbeat_interval={HEARTBEAT!r},"
            f" horse_jobs={self.horse_jobs!r}).work()\n"
        )
        with open(self.directory / f"{name}.log", "wb") as log:
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-c", code],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                    env=self.env,
                    start_new_session=True,
                )
            )

    def live(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.processes if p.poll() is None]

    def horses(self) -> list[int]:
        return [pid for p in self.live() for pid in descendants(p.pid) if pid_alive(pid)]

    def close(self) -> None:
        for process in self.processes:
            for pid in [*descendants(process.pid), process.pid]:
                kill_hard(pid)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


class Enqueuer:
    """Enqueue numbered jobs from plain SQL, surviving restarts without duplicating a job.

    A job's description holds its number: after a lost connection the enqueuer looks up
    which of the batch committed before enqueuing the rest again.
    """

    def __init__(self, dsn: str, log_path: Path, rng: random.Random) -> None:
        self.dsn = dsn
        self.log_path = log_path
        self.rng = rng
        self.next_number = 0
        self.confirmed: set[int] = set()

    def batch(self) -> None:
        numbers = list(range(self.next_number, self.next_number + BATCH))
        self.next_number += BATCH
        while True:
            try:
                self._enqueue([n for n in numbers if n not in self._committed(numbers)])
                self.confirmed.update(numbers)
                return
            except psycopg2.OperationalError:
                time.sleep(0.2)  # the server is restarting

    def _committed(self, numbers: list[int]) -> set[int]:
        with closing(psycopg2.connect(self.dsn)) as conn, conn.cursor() as cursor:
            cursor.execute(
                "SELECT description FROM pq_job WHERE description = ANY (%s)",
                [[f"chaos-{n}" for n in numbers]],
            )
            return {int(description.split("-")[1]) for (description,) in cursor.fetchall()}

    def _enqueue(self, numbers: list[int]) -> None:
        with closing(psycopg2.connect(self.dsn)) as conn:
            with conn, conn.cursor() as cursor:  # one transaction for the batch
                for number in numbers:
                    cursor.execute(
                        "SELECT pq_enqueue(%s, 'tests.chaosjobs.record_start',"
                        " jsonb_build_array(%s, %s, %s), result_ttl => -1, description => %s)",
                        [
                            QUEUE,
                            number,
                            str(self.log_path),
                            self.rng.randrange(5, 60),
                            f"chaos-{number}",
                        ],
                    )


def unfinished(dsn: str) -> int:
    try:
        with closing(psycopg2.connect(dsn)) as conn, conn.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pq_job WHERE status IN ('queued', 'scheduled', 'started')"
            )
            return int(cursor.fetchone()[0])
    except psycopg2.OperationalError:
        return -1


@pytest.mark.timeout(240)
@pytest.mark.parametrize("horse_jobs", [1, 5], ids=["horse-per-job", "reused-horses"])
def test_no_job_is_lost_stuck_or_run_twice_under_kills_and_restarts(
    cluster: TemporaryPostgres, tmp_path: Path, horse_jobs: int
) -> None:
    """With a horse per job, and with horses reused for 5 jobs (a horse killed may be idle
    between two jobs, or be handed a job as it dies)."""
    rng = random.Random(SEED)
    log_path = tmp_path / "starts.log"
    workers = Workers(cluster.dsn, tmp_path, horse_jobs)
    enqueuer = Enqueuer(cluster.dsn, log_path, rng)
    kills = Counter[str]()
    restarts = [(0.35 * CHAOS_SECONDS, False), (0.7 * CHAOS_SECONDS, True)]
    try:
        for _ in range(WORKERS):
            workers.start()
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < CHAOS_SECONDS:
            enqueuer.batch()
            if restarts and elapsed >= restarts[0][0]:
                _, immediate = restarts.pop(0)
                cluster.restart(immediate=immediate)
                kills["immediate restart" if immediate else "fast restart"] += 1
            action = rng.choice(["worker", "horse", "horse", "nothing"])
            if action == "worker" and workers.live():
                victim = rng.choice(workers.live())
                for pid in [victim.pid, *descendants(victim.pid)]:
                    kill_hard(pid)  # the host is gone: its horse too
                victim.wait(timeout=10)
                workers.start()
                kills["worker"] += 1
            elif action == "horse" and (horses := workers.horses()):
                try:
                    os.kill(rng.choice(horses), signal.SIGKILL)
                except ProcessLookupError:
                    continue  # it had just exited
                kills["horse"] += 1
            time.sleep(rng.uniform(0.1, 0.5))

        deadline = time.monotonic() + SETTLE_SECONDS
        while unfinished(cluster.dsn) != 0 and time.monotonic() < deadline:
            time.sleep(0.25)
        with closing(psycopg2.connect(cluster.dsn)) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT description, status, exc_info FROM pq_job")
            rows = {int(d.split("-")[1]): (status, exc) for d, status, exc in cursor.fetchall()}
    finally:
        workers.close()

    starts = Counter(int(line) for line in log_path.read_text().split())
    lost = sorted(enqueuer.confirmed - rows.keys())
    stuck = sorted(n for n, (status, _) in rows.items() if status not in ("finished", "failed"))
    twice = sorted(n for n, count in starts.items() if count > 1)
    finished = [n for n, (status, _) in rows.items() if status == "finished"]
    reasons = Counter(
        (exc or "").split(":", 1)[0] for status, exc in rows.values() if status == "failed"
    )
    report = (
        f"chaos (seed {SEED}, horse_jobs={horse_jobs}): {len(enqueuer.confirmed)} jobs, "
        f"{dict(kills)}; "
        f"finished {len(finished)}, failed {dict(reasons)}; "
        f"lost {len(lost)}, stuck {len(stuck)}, run twice {len(twice)}"
    )
    print(report)
    assert (lost, stuck, twice) == ([], [], []), report
    assert all(starts[n] == 1 for n in finished), "a finished job's start was not logged once"
    assert kills["worker"] + kills["horse"] >= 5, report
