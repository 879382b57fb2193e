"""python -m bench's options and report: which PostgreSQL settings each figure was measured on."""

from __future__ import annotations

from pathlib import Path

from bench import report, run
from bench.context import DEFAULTS, FAST, Context
from bench.figures import Figure


def test_fast_is_asked_for_by_name_and_written_apart() -> None:
    default = run.parse_args(["--quick"])
    fast = run.parse_args(["--quick", "--fast"])
    chosen = run.parse_args(["--fast", "--out", "elsewhere"])

    assert (default.fast, default.out) == (False, run.OUT)
    assert (fast.fast, fast.out) == (True, run.OUT / "fast")
    assert chosen.out == Path("elsewhere")


def figure() -> Figure:
    return Figure("throughput: fork, sleep 0", "pq fork", "rate", 100.0, "jobs/s", 1, 0, 100, 1.0)


def test_every_table_and_row_names_the_cluster_it_was_measured_on(tmp_path: Path) -> None:
    for cluster, words in ((DEFAULTS, "fsync=on"), (FAST, "fsync=off")):
        ctx = Context(dsn="", redis_url=None, quick=True, cluster=cluster)
        ctx.add(figure())
        report.write_all(tmp_path, ctx, "env", "python -m bench", plot=False)
        text = (tmp_path / "results.txt").read_text(encoding="utf-8")

        assert words in text.splitlines()[0]
        assert f"Throughput, fork, sleep 0, PostgreSQL {cluster}:" in text
        assert [f.cluster for f in report.read_csv(tmp_path / "results.csv")] == [cluster]
