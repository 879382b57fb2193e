"""manage.py pqbenchmark: its output and its errors (the measuring is tested in test_benchmark)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


def pqbenchmark(*args: str) -> str:
    out = StringIO()
    call_command("pqbenchmark", *args, stdout=out)
    return out.getvalue()


def test_prints_the_environment_then_the_rate() -> None:
    output = pqbenchmark("20", "-w", "1")

    assert output.startswith("machine:")
    assert "postgresql: " in output
    assert "WARNING" in output
    assert output.rstrip().splitlines()[-1].startswith("pq fork, 1 worker(s), sleep 0 ms: 20 jobs")
    assert "jobs/s" in output


def test_reused_horses() -> None:
    last = pqbenchmark("30", "-w", "2", "--horse-jobs", "10").rstrip().splitlines()[-1]
    assert last.startswith("pq fork horse_jobs=10, 2 worker(s), sleep 0 ms: 30 jobs"), last
    with pytest.raises(CommandError, match="horse_jobs > 1 needs a forking worker"):
        pqbenchmark("10", "--simple", "--horse-jobs", "10")
    with pytest.raises(CommandError, match="--horse-jobs is a django-pq option"):
        pqbenchmark("10", "--backend", "rq", "--horse-jobs", "10")


def test_unreachable_redis_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="rq and redis packages|cannot reach Redis"):
        pqbenchmark("10", "--backend", "rq", "--redis-url", "redis://127.0.0.1:1/0")


def test_batch_needs_a_non_forking_pq_worker() -> None:
    with pytest.raises(CommandError, match="--batch needs --simple"):
        pqbenchmark("10", "--batch", "10")
    with pytest.raises(CommandError, match="django-pq option"):
        pqbenchmark("10", "--backend", "rq", "--batch", "10")
