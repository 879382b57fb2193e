"""Write a run's figures: bench/out/results.csv, results.txt (tables) and results.png (plots)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import throughput
from bench.context import CLUSTERS, Context
from bench.figures import Figure, find

THROUGHPUT = "throughput: "


def write_all(
    out: Path, ctx: Context, env_text: str, command: str, plot: bool = True
) -> list[Path]:
    """Write the CSV, the text tables and (with ``plot``) the plot into ``out``; return their
    paths. Plot only at the end: it takes seconds and matplotlib's memory, once."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.csv", out / "results.txt"]
    write_csv(paths[0], ctx.figures)
    paths[1].write_text(text(ctx, env_text, command), encoding="utf-8")
    if not plot:
        return paths
    png = out / "results.png"
    try:
        write_png(png, ctx.figures, env_text, command)
    except ImportError as exc:
        ctx.note(f"no plot: matplotlib is not installed ({exc}); pip install matplotlib")
    else:
        paths.append(png)
    return paths


def write_csv(path: Path, figures: Sequence[Figure]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=Figure.columns())
        writer.writeheader()
        for figure in figures:
            writer.writerow(figure.as_row())


# Text


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Return a plain-text table, the first column left-aligned, the others right-aligned."""
    cells = [[str(cell) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(a: Figure | None, b: Figure | None) -> str:
    if a is None or b is None or not b.value:
        return "-"
    return f"{a.value / b.value:.1f}x"


def text(ctx: Context, env_text: str, command: str) -> str:
    parts = [
        f"django-pq benchmarks against RQ, on {CLUSTERS[ctx.cluster]}",
        f"command: {command}",
        env_text,
        "",
    ]
    sections = {figure.section for figure in ctx.figures}
    for section in _ordered_sections(ctx.figures):
        if section.startswith(THROUGHPUT):
            parts.append(_throughput_text(ctx.figures, section, ctx.cluster))
    if "pgbench" in sections:
        parts.append(_pgbench_text(ctx.figures))
    if "enqueue" in sections:
        parts.append(_enqueue_text(ctx.figures))
    if "wake-up latency" in sections:
        parts.append(_latency_text(ctx.figures))
    if "memory" in sections:
        parts.append(_memory_text(ctx.figures))
    if "queues" in sections:
        parts.append(_plain_text(ctx.figures, "queues", QUEUES_INTRO))
    if "serial" in sections:
        parts.append(_plain_text(ctx.figures, "serial", SERIAL_INTRO))
    if "big queue" in sections:
        parts.append(_plain_text(ctx.figures, "big queue", BIG_QUEUE_INTRO))
    parts.append(_targets_text(ctx.figures))
    if ctx.notes:
        parts.append("Notes\n" + "\n".join(f"- {note}" for note in ctx.notes) + "\n")
    if ctx.walltimes:
        rows = [[name, f"{seconds:,.0f}"] for name, seconds in ctx.walltimes.items()]
        rows.append(["total", f"{sum(ctx.walltimes.values()):,.0f}"])
        parts.append("Wall time per section\n" + table(["section", "seconds"], rows) + "\n")
    return "\n".join(parts)


def _ordered_sections(figures: Sequence[Figure]) -> list[str]:
    seen: list[str] = []
    for figure in figures:
        if figure.section not in seen:
            seen.append(figure.section)
    return seen


def _labels(figures: Sequence[Figure], section: str) -> list[str]:
    labels: list[str] = []
    for figure in figures:
        if figure.section == section and figure.name not in labels:
            labels.append(figure.name)
    return labels


def _rq_side(label: str) -> str | None:
    """``rq`` or ``django-rq`` for an RQ figure's label; None for django-pq's."""
    side = label.split(" ", 1)[0]
    return side if side in ("rq", "django-rq") else None


def _throughput_text(figures: Sequence[Figure], section: str, cluster: str) -> str:
    labels = _labels(figures, section)
    pq_labels = [label for label in labels if label.startswith("pq")]
    rq_labels = [label for label in labels if _rq_side(label)]
    workers = sorted({f.workers or 0 for f in figures if f.section == section})
    sleep = next(f.sleep_ms for f in figures if f.section == section) or 0
    headers = ["workers", *(f"{label} (jobs)" for label in labels)]
    headers += [f"{pq}/{_rq_side(rq)}" for pq in pq_labels for rq in rq_labels]
    if sleep:
        headers += ["ideal", *(f"{label} % ideal" for label in labels)]
    rows = []
    for count in workers:
        cells = {label: find(figures, section, label, "rate", count) for label in labels}
        row: list[Any] = [count]
        for label in labels:
            figure = cells[label]
            row.append("-" if figure is None else f"{figure.value:,.1f} ({figure.jobs})")
        row += [_ratio(cells[pq], cells[rq]) for pq in pq_labels for rq in rq_labels]
        if sleep:
            ideal = count * 1000 / sleep
            row.append(f"{ideal:g}")
            for label in labels:
                figure = cells[label]
                row.append("-" if figure is None else f"{100 * figure.value / ideal:.0f}%")
        rows.append(row)
    title = (
        f"Throughput, {section[len(THROUGHPUT) :]}, PostgreSQL {cluster}: jobs/s (jobs run), "
        "pq/RQ ratios"
    )
    intro = (
        "Workers, each its own command: pq = python -m django pqworker; rq = rq worker --url; "
        "django-rq = python -m django rqworker (django-rq). "
        "Clock: from the first enqueue (workers already registered) until no job of the queue "
        "is left; do_nothing(sleep) jobs, result_ttl=0, enqueued 1000 per call while the "
        "workers consume. Forking figures are the median of 3 runs, pq and RQ taking turns "
        "(1 run with --quick; results.csv lists the runs)."
    )
    return f"{title}\n{intro}\n{table(headers, rows)}\n"


def _enqueue_text(figures: Sequence[Figure]) -> str:
    rows = [
        [f.name, f.jobs, _num(f.seconds, 2), _num(f.value, 0)]
        for f in figures
        if f.section == "enqueue"
    ]
    out = (
        "Enqueue rate (no worker running; q.enqueue: one job per call and per transaction;\n"
        "one-job-per-call figures: the median of 5 rounds, taking turns, 1 with --quick)\n"
    )
    out += table(["what", "jobs", "seconds", "jobs/s"], rows) + "\n"
    single = find(figures, "enqueue", "pq q.enqueue (autocommit)", "rate")
    rq_single = find(figures, "enqueue", "rq q.enqueue", "rate")
    if single and rq_single:
        out += f"pq q.enqueue / rq q.enqueue: {_ratio(single, rq_single)}\n"
    return out


def _latency_text(figures: Sequence[Figure]) -> str:
    section = "wake-up latency"
    rows = []
    for name in _labels(figures, section):
        values = [find(figures, section, name, metric) for metric in ("p50", "p99", "max", "mean")]
        jobs = values[0].jobs if values[0] else None
        rows.append([name, jobs, *(_num(v.value if v else None, 2) for v in values)])
    intro = (
        "Wake-up latency, one idle worker: client time.time() just before COMMIT (RQ: just "
        "before the enqueueing pipeline) to the job function's first line (in the horse for "
        "forking workers); the next job is enqueued 5 ms after the previous one finished.\n"
    )
    headers = ["worker", "jobs", "p50 ms", "p99 ms", "max ms", "mean ms"]
    return intro + table(headers, rows) + "\n"


def _pgbench_text(figures: Sequence[Figure]) -> str:
    rows = [
        [f.name, f.workers, _num(f.value, 0), f.note] for f in figures if f.section == "pgbench"
    ]
    intro = (
        "PostgreSQL's limit: one job's life as a pgbench script (insert; claim with FOR UPDATE "
        "SKIP LOCKED; finish), three transactions per job (batch scripts: per 100 jobs), "
        "pgbench --protocol=prepared, one pgbench thread per client.\n"
    )
    out = intro + table(["script", "clients", "jobs/s", "detail"], rows) + "\n"
    fractions = _fractions(figures)
    if fractions:
        out += "\ndjango-pq's throughput at sleep 0 as a fraction of that limit\n"
        headers = ["pq figure", "jobs/s", "pgbench reference", "jobs/s", "fraction"]
        out += table(headers, fractions) + "\n"
    return out


def _fractions(figures: Sequence[Figure]) -> list[list[Any]]:
    rows = []
    for figure in figures:
        if not figure.section.startswith(THROUGHPUT) or figure.sleep_ms or figure.name[:2] != "pq":
            continue
        batch = "batch" in figure.name
        clients = 1 if figure.workers == 1 else 4
        name = "plain SQL, batches of 100" if batch else "plain SQL job life"
        reference = find(figures, "pgbench", name, "rate", clients)
        if reference is None:
            continue
        rows.append(
            [
                f"{figure.name}, {figure.workers} worker(s)",
                _num(figure.value, 0),
                f"{name}, -c {clients}",
                _num(reference.value, 0),
                f"{100 * figure.value / reference.value:.0f}%",
            ]
        )
    return rows


def _memory_text(figures: Sequence[Figure]) -> str:
    rows = []
    for name in _labels(figures, "memory"):
        values = {
            metric: find(figures, "memory", name, metric)
            for metric in ("first", "warm", "last", "max", "growth")
        }
        jobs = values["first"].jobs if values["first"] else None
        cells = [_num(v.value if v else None, 1) for v in values.values()]
        cells[-1] += "%"
        rows.append([name, jobs, *cells])
    intro = (
        "Memory: one worker's RSS (VmRSS), sampled every 0.1 s while it works through a queue "
        "filled beforehand; warm = after 1% of the jobs; growth = warm to last.\n"
    )
    headers = ["worker", "jobs", "first MiB", "warm MiB", "last MiB", "max MiB", "growth"]
    return intro + table(headers, rows) + "\n"


QUEUES_INTRO = (
    "Claims over all queues (pq_dequeue_many with NULL queue names, up to 10 jobs, nothing "
    "queued): mean time with 1 queue row and with 20,000; and naming all 20,000 queues."
)

SERIAL_INTRO = (
    "Serial queue: mean time of one claim (pq_dequeue naming the queue, or NULL queue names) "
    "and its pq_finish, with 10 and with 100,000 jobs waiting on the serial queue."
)

BIG_QUEUE_INTRO = (
    "Big queue: 2 non-forking batch workers (batch=100); dequeue rate in rounds of 1,000 "
    "queued jobs, then over the first jobs of a bulk-enqueued big queue; pq_job's size "
    "(pg_total_relation_size; heap and indexes in the detail) through the run."
)


def _plain_text(figures: Sequence[Figure], section: str, intro: str) -> str:
    rows = [
        [f.name, f"{_num(f.value, 1)} {f.unit}", _num(f.seconds, 1), f.note]
        for f in figures
        if f.section == section and f.metric not in ("heap", "indexes")
    ]
    return f"{intro}\n" + table(["figure", "value", "seconds", "detail"], rows) + "\n"


# Targets of issues 3 and 14


def targets(figures: Sequence[Figure]) -> list[list[str]]:
    """Return [target, measured, verdict] rows for the issue's targets that were measured."""
    rows: list[list[str]] = []

    def check(target: str, measured: str | None, ok: bool | None) -> None:
        if measured is not None:
            rows.append([target, measured, "met" if ok else "MISSED"])

    fork = THROUGHPUT + throughput.FORK0
    for side in ("rq", "django-rq"):  # the bare rq worker, django-rq's rqworker
        for count in (1, 2, 4):
            pq = find(figures, fork, "pq fork", "rate", count)
            rq = find(figures, fork, f"{side} Worker", "rate", count)
            if pq and rq:
                ratio = pq.value / rq.value
                target = f"sleep 0, fork, {count} worker(s): pq >= 3x {side} Worker"
                check(target, f"{ratio:.1f}x", ratio >= 3)
        pq = find(figures, fork, throughput.REUSED, "rate", 2)
        rq = find(figures, fork, f"{side} Worker", "rate", 2)
        if pq and rq:
            ratio = pq.value / rq.value
            target = f"sleep 0, 2 workers: {throughput.REUSED} >= 10x {side} Worker"
            check(target, f"{ratio:.1f}x", ratio >= 10)
    simple = THROUGHPUT + throughput.SIMPLE0
    best = f"pq simple batch={throughput.SIMPLE_BATCH}"
    for side in ("rq", "django-rq"):
        for count in (1, 2):
            pq = find(figures, simple, best, "rate", count)
            rq = find(figures, simple, f"{side} SimpleWorker", "rate", count)
            if pq and rq:
                ratio = pq.value / rq.value
                target = f"non-forking, {count} worker(s): {best} >= 10x {side} SimpleWorker"
                check(target, f"{ratio:.1f}x", ratio >= 10)
    pq = find(figures, simple, best, "rate", 2)
    if pq:
        check(f"{best}, 2 workers >= 3,000 jobs/s", f"{pq.value:,.0f}", pq.value >= 3000)
    single = find(figures, "enqueue", "pq q.enqueue (autocommit)", "rate")
    rq_single = find(figures, "enqueue", "rq q.enqueue", "rate")
    if single and rq_single:
        ratio = single.value / rq_single.value
        check("single q.enqueue: pq >= rq", f"{ratio:.2f}x", ratio >= 1)
    bulk = next((f for f in figures if f.name.startswith("pq q.enqueue_many")), None)
    if bulk:
        check("bulk enqueue >= 20,000 jobs/s", f"{bulk.value:,.0f}", bulk.value >= 20000)
    p50 = find(figures, "wake-up latency", "pq fork", "p50")
    p99 = find(figures, "wake-up latency", "pq fork", "p99")
    if p50 and p99:
        check(
            "wake-up latency, idle forking worker: p50 <= 5 ms",
            f"{p50.value:.2f} ms",
            p50.value <= 5,
        )
        check(
            "wake-up latency, idle forking worker: p99 <= 25 ms",
            f"{p99.value:.2f} ms",
            p99.value <= 25,
        )
    slow = find(figures, THROUGHPUT + throughput.FORK250, "pq fork", "rate", 20)
    if slow:
        check(
            "sleep 250 ms, 20 workers: >= 95% of 80 jobs/s", f"{slow.value:.1f}", slow.value >= 76
        )
        check(
            "sleep 250 ms, 20 workers: >= 92% of 80 jobs/s (issue 14)",
            f"{slow.value:.1f}",
            slow.value >= 0.92 * 80,
        )
    slow = find(figures, THROUGHPUT + throughput.FORK250, throughput.REUSED, "rate", 20)
    if slow:
        check(
            f"sleep 250 ms, 20 workers, {throughput.REUSED}: >= 92% of 80 jobs/s",
            f"{slow.value:.1f}",
            slow.value >= 0.92 * 80,
        )
    ratio_big = next((f for f in figures if f.section == "big queue" and f.metric == "ratio"), None)
    if ratio_big:
        check(
            "1,000,000 queued: dequeue rate within 20% of 1,000 queued",
            f"{ratio_big.value:.0f}%",
            ratio_big.value >= 80,
        )
    check_sizes(figures, check)
    for name in _labels(figures, "memory"):
        growth = find(figures, "memory", name, "growth")
        if growth:
            check(
                f"memory flat within 10% ({name})", f"{growth.value:+.1f}%", abs(growth.value) <= 10
            )
    return rows


def check_sizes(figures: Sequence[Figure], check: Any) -> None:
    """The big queue's size targets: the heap comes back after VACUUM, nothing keeps growing."""
    big = [f for f in figures if f.section == "big queue"]

    def size(metric: str, *words: str) -> float | None:
        for f in big:
            if f.metric == metric and all(word in f.name for word in words):
                return f.value
        return None

    start, end = size("heap", "start"), size("heap", "1st", "VACUUM")
    if start is not None and end is not None:
        target = "pq_job heap back to its start size after processing + plain VACUUM"
        check(target, f"{start:.1f} -> {end:.1f} MiB", end <= start + 1)
    sizes = [size("size", cycle, "largest") for cycle in ("1st", "2nd", "3rd")]
    if None not in sizes:
        target = "no unbounded bloat: pq_job's peak, 3rd big batch <= 2nd's + 10%"
        shown = " -> ".join(f"{value:.0f}" for value in sizes) + " MiB"
        check(target, shown, sizes[2] <= 1.1 * sizes[1])  # type: ignore[operator]
    sizes = [size("size", cycle, "VACUUM") for cycle in ("1st", "2nd", "3rd")]
    if None not in sizes:
        target = "no unbounded bloat: pq_job after VACUUM, 3rd big batch <= 2nd's + 10%"
        shown = " -> ".join(f"{value:.0f}" for value in sizes) + " MiB"
        check(target, shown, sizes[2] <= 1.1 * sizes[1])  # type: ignore[operator]


def _targets_text(figures: Sequence[Figure]) -> str:
    rows = targets(figures)
    if not rows:
        return ""
    intro = "Targets of issues 3 and 14\n"
    return intro + table(["target", "measured", "verdict"], rows) + "\n"


# Plot


def read_csv(path: Path) -> list[Figure]:
    """Read back the figures of a results.csv (to plot them again)."""
    numbers = {"value": float, "workers": int, "sleep_ms": float, "jobs": int, "seconds": float}
    figures = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            values: dict[str, Any] = dict(row)
            for name, kind in numbers.items():
                values[name] = kind(float(row[name])) if row[name] else None
            figures.append(Figure(**values))
    return figures


def write_png(path: Path, figures: Sequence[Figure], env_text: str, command: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(19, 11))
    for ax, section in zip(
        axes[0],
        [throughput.FORK0, throughput.SIMPLE0, throughput.FORK250],
        strict=True,
    ):
        _plot_throughput(ax, figures, THROUGHPUT + section)
    _plot_bars(
        axes[1][0],
        [f for f in figures if f.section == "enqueue"],
        "Enqueue rate",
        label=lambda f: f.name.split(" (")[0].replace("q.", ""),
    )
    _plot_latency(axes[1][1], figures)
    _plot_bars(
        axes[1][2],
        [f for f in figures if f.section == "pgbench"],
        "pgbench job life (the PostgreSQL limit)",
        label=lambda f: f"{f.note.split(':')[0].removesuffix('.sql')} -c {f.workers}",
    )
    cluster = next((f.cluster for f in figures if f.cluster), "")
    fig.suptitle(f"django-pq vs RQ, PostgreSQL {cluster} — {command}", fontsize=13)
    fig.text(0.01, 0.005, env_text, fontsize=7, family="monospace", va="bottom")
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_throughput(ax: Any, figures: Sequence[Figure], section: str) -> None:
    ax.set_title(section[len(THROUGHPUT) :])
    if not _labels(figures, section):
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
        return
    ax.set_xlabel("workers")
    ax.set_ylabel("jobs/s")
    ax.set_xticks(sorted({f.workers or 0 for f in figures if f.section == section}))
    sleep = 0.0
    for label in _labels(figures, section):
        points = sorted(
            (f.workers or 0, f.value) for f in figures if f.section == section and f.name == label
        )
        sleep = next(f.sleep_ms or 0 for f in figures if f.section == section)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    if sleep:
        workers = sorted({f.workers or 0 for f in figures if f.section == section})
        ax.plot(workers, [w * 1000 / sleep for w in workers], "k--", label="ideal")
    if section.endswith(throughput.SIMPLE0):
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def _plot_bars(
    ax: Any,
    figures: Sequence[Figure],
    title: str,
    log: bool = False,
    label: Any = None,
) -> None:
    ax.set_title(title)
    if not figures:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
        return
    names = [label(f) if label else f.name for f in figures]
    colors = ["tab:red" if name.startswith("rq") else "tab:blue" for name in names]
    ax.barh(names, [f.value for f in figures], color=colors)
    ax.set_xlabel("jobs/s")
    if log:
        ax.set_xscale("log")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)
    for index, figure in enumerate(figures):
        ax.text(figure.value, index, f" {figure.value:,.0f}", va="center", fontsize=7)


def _plot_latency(ax: Any, figures: Sequence[Figure]) -> None:
    section = "wake-up latency"
    names = _labels(figures, section)
    ax.set_title("Wake-up latency, idle worker (ms)")
    if not names:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
        return
    width = 0.4
    for offset, metric in ((-width / 2, "p50"), (width / 2, "p99")):
        values = [getattr(find(figures, section, name, metric), "value", 0.0) for name in names]
        ax.bar([i + offset for i in range(len(names))], values, width, label=metric)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("ms")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
