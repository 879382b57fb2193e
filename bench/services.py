"""The bench's own services: a throwaway PostgreSQL cluster, a throwaway Redis, and Django."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

REDIS_MISSING = (
    "redis-server was not found on PATH: install it (apt-get install -y redis-server), "
    "or run with --no-rq to measure django-pq alone"
)


def free_port() -> int:
    """Return a TCP port nobody listens on now (127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def postgres(fast: bool = False) -> Iterator[str]:
    """Yield the DSN of a fresh throwaway cluster (pq.testing.TemporaryPostgres), then drop it.

    The cluster keeps PostgreSQL's durable defaults (fsync, synchronous_commit and
    full_page_writes on) unless ``fast``, which turns those three off (``FAST_SETTINGS``).
    """
    from pq.testing import FAST_SETTINGS, TemporaryPostgres

    with TemporaryPostgres(settings=FAST_SETTINGS if fast else None) as cluster:
        yield cluster.dsn


@contextlib.contextmanager
def redis() -> Iterator[str]:
    """Start ``redis-server`` without persistence on a free port; yield its URL; kill it."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(REDIS_MISSING)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pq-bench-redis-") as directory:
        command = [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", directory,
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, cwd=directory)
        try:
            _wait_for_port(port, process)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {process.returncode} at start")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"redis-server did not listen on port {port} within 10 s")


def configure_django(dsn: str) -> None:
    """Configure Django standalone on ``dsn`` (pq's apps, pq logging at WARNING) and migrate."""
    from pq.testing import configure_django as configure

    configure(dsn, log_level="WARNING")
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
