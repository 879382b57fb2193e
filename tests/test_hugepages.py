"""Huge pages for a forking worker's heap (pq.hugepages): which memory, and when."""

from __future__ import annotations

import mmap
import os
import platform
import re
from typing import Any

import pytest
from django.test import override_settings

from pq import Queue, Worker, executors, hugepages
from pq.models import Job, JobStatus
from tests import jobs

MiB = 1 << 20


def _kernel_collapses() -> bool:
    """Linux 6.1+ (MADV_COLLAPSE) with transparent huge pages not turned off."""
    if platform.system() != "Linux" or hugepages.huge_page_size() == 0:
        return False
    release = re.match(r"(\d+)\.(\d+)", platform.release())
    if release is None or (int(release[1]), int(release[2])) < (6, 1):
        return False
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as enabled:
            return "[never]" not in enabled.read()
    except OSError:
        return False


def _anon_huge_kib() -> int:
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1])
    return 0


@pytest.mark.parametrize(
    ("line", "stretch"),
    [
        # the aligned [2 MiB, 6 MiB) inside an anonymous region [1 MiB, 6 MiB)
        ("00100000-00600000 rw-p 00000000 00:00 0 \n", (2 * MiB, 4 * MiB)),
        (
            "00200000-00400000 rw-p 00000000 00:00 0                          [heap]\n",
            (2 * MiB, 2 * MiB),
        ),
        ("00100000-00380000 rw-p 00000000 00:00 0 \n", None),  # no whole aligned 2 MiB
        ("00000000-00800000 rw-p 00000000 00:00 0                          [stack]\n", None),
        ("00000000-00800000 r--p 00000000 00:00 0 \n", None),  # read-only
        (
            "00000000-00800000 rw-s 00000000 00:01 7        /dev/zero (deleted)\n",
            None,
        ),
        (
            "00000000-00800000 rw-p 00001000 08:01 42                         /usr/lib/libx.so\n",
            None,
        ),
        ("not a maps line\n", None),
    ],
)
def test_only_whole_aligned_huge_pages_of_private_anonymous_memory_are_chosen(
    line: str, stretch: tuple[int, int] | None
) -> None:
    assert hugepages._stretch(line, 2 * MiB) == stretch


def test_nothing_is_collapsed_where_maps_cannot_be_read(tmp_path: Any) -> None:
    assert hugepages.collapse_heap(str(tmp_path / "no-maps")) == 0


@pytest.mark.skipif(not _kernel_collapses(), reason="needs Linux 6.1+ with THP not 'never'")
def test_the_heap_is_backed_by_huge_pages_and_keeps_its_contents() -> None:
    size = 16 * MiB
    region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        for offset in range(0, size, mmap.PAGESIZE):
            region[offset] = offset // mmap.PAGESIZE % 251
        before = _anon_huge_kib()

        collapsed = hugepages.collapse_heap()

        assert collapsed >= size - hugepages.huge_page_size()
        assert _anon_huge_kib() - before >= (size - hugepages.huge_page_size()) // 1024
        assert all(
            region[offset] == offset // mmap.PAGESIZE % 251
            for offset in range(0, size, mmap.PAGESIZE)
        )
        # A forked child writes its own copy of one page; the parent's stays as it was.
        pid = os.fork()
        if pid == 0:
            region[5 * MiB] = 0xFF
            os._exit(0 if region[5 * MiB] == 0xFF else 1)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        assert region[5 * MiB] == 5 * MiB // mmap.PAGESIZE % 251
    finally:
        region.close()


def _count_collapses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = hugepages.collapse_heap

    def counting(*args: Any) -> int:
        calls.append(real(*args))
        return calls[-1]

    monkeypatch.setattr(hugepages, "collapse_heap", counting)
    return calls


def _run_jobs(count: int) -> list[Job]:
    queue = Queue("default")
    queued = [queue.enqueue(jobs.add, i, 1) for i in range(count)]
    Worker(["default"]).work(burst=True)
    return [Job.objects.get(pk=job.pk) for job in queued]


def test_a_forking_worker_collapses_its_heap_before_forking_and_every_so_many_jobs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _count_collapses(monkeypatch)
    monkeypatch.setattr(executors, "COLLAPSE_EVERY", 2)

    done = _run_jobs(5)

    assert [job.status for job in done] == [JobStatus.FINISHED] * 5
    assert [job.result for job in done] == [1, 2, 3, 4, 5]
    assert len(calls) == 3  # before jobs 1, 3 and 5


@override_settings(PQ_HUGE_PAGES=False)
def test_pq_huge_pages_false_leaves_the_heap_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_collapses(monkeypatch)

    done = _run_jobs(2)

    assert [job.result for job in done] == [1, 2]
    assert calls == []
