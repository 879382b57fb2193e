"""pq.benchmark on tiny numbers: real forked workers, real PostgreSQL (and Redis if installed)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from pq import benchmark
from pq.models import Job, WorkerStore


def children() -> set[int]:
    """The live direct children of this process (forked workers; also the servers tests run)."""
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid() and fields[0] not in ("Z", "X"):
                found.add(int(entry))
    return found


def test_environment_names_the_postgresql_server() -> None:
    env = benchmark.environment()
    postgres = env["postgresql"]
    assert postgres["server_version"].split(".")[0].isdigit()
    assert set(benchmark.PG_SETTINGS) <= set(postgres["settings"])
    assert env["cores"] >= 1
    text = benchmark.format_environment(env)
    assert f"postgresql: {postgres['server_version']}" in text
    assert "synchronous_commit=" in text


@pytest.mark.parametrize(("fork", "batch", "mode"), [(True, 1, "fork"), (False, 10, "simple")])
def test_run_pq_reports_a_rate_and_leaves_nothing_behind(fork: bool, batch: int, mode: str) -> None:
    progress: list[tuple[int, int, float]] = []
    before = children()

    result = benchmark.run_pq(
        50, 1, fork=fork, batch=batch, progress=lambda *args: progress.append(args)
    )

    assert (result.backend, result.mode, result.workers, result.jobs) == ("pq", mode, 1, 50)
    assert result.jobs_per_second > 0
    assert result.failed == 0
    assert progress[-1][:2] == (50, 50)
    assert not Job.objects.filter(origin=benchmark.QUEUE).exists()
    assert not WorkerStore.objects.exists()
    assert children() == before


def test_a_mode_workers_refuse_or_a_bad_count_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="batch > 1 needs fork=False"):
        benchmark.run_pq(10, 1, fork=True, batch=10)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        benchmark.run_pq(10, 0)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A throwaway redis-server without persistence; skip when it or rq is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    pytest.importorskip("rq")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", directory]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            deadline = time.monotonic() + 10
            while True:
                try:
                    benchmark.redis_client(url).close()
                    break
                except RuntimeError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_run_rq_reports_a_rate_and_leaves_no_worker(redis_url: str) -> None:
    before = children()
    result = benchmark.run_rq(30, 1, simple=True, redis_url=redis_url)

    assert (result.backend, result.label, result.jobs) == ("rq", "rq SimpleWorker", 30)
    assert result.jobs_per_second > 0
    assert children() == before
    env = benchmark.environment(redis_url=redis_url)
    assert env["redis"]["version"]
    assert env["redis"]["appendonly"] == "no"
