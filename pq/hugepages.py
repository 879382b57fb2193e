"""Transparent huge pages for a forking worker's heap (Linux 6.1+, ``MADV_COLLAPSE``).

Most of what a fork per job costs is page-table work: ``fork()`` copies one entry per
present page of the worker, and the horse's exit tears them down again. A Django worker
holds some 40 MiB of heap (Python objects, malloc's arena): about 10,000 entries per fork.
A huge page (2 MiB) is one entry. So a forking worker, once its imports are done, asks the
kernel to back every whole, aligned 2 MiB of its private anonymous memory with huge pages
(``MADV_HUGEPAGE``, then ``MADV_COLLAPSE`` to do it now rather than when khugepaged passes
by). Copy-on-write still copies 4 KiB pages: a horse that writes to a huge page splits its
own mapping of it, and only the page written is copied.

About half of a Django worker's heap collapses (Python's 1 MiB arenas are often not
aligned): 20-24 of 42 MiB for the bench's site, and 14% more trivial jobs per second with 2
forking workers on a 2-core VM. Only memory in use is collapsed, so the worker grows by
little (the untouched pages inside those stretches). The first collapse, before the first
fork, took 51 ms there; one over a heap mostly collapsed already, 2 ms. Where the kernel
cannot (not Linux, older than 6.1, THP disabled), nothing changes and the worker forks as
before.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable

PMD_SIZE = "/sys/kernel/mm/transparent_hugepage/hpage_pmd_size"  # bytes in a huge page
MADV_HUGEPAGE = 14
MADV_COLLAPSE = 25  # <linux/mman.h>, Linux 6.1
_REGION = re.compile(r"([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+ *(.*)")


def _libc_madvise() -> Callable[[int, int, int], int] | None:
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise


_madvise = _libc_madvise()


def huge_page_size() -> int:
    """The size of a transparent huge page here (2 MiB on x86-64); 0 where there are none."""
    try:
        with open(PMD_SIZE) as size:
            return int(size.read())
    except (OSError, ValueError):
        return 0


def collapse_heap(maps: str = "/proc/self/maps") -> int:
    """Back this process's private anonymous memory with huge pages where whole, aligned
    huge pages of it exist; return how many bytes were collapsed (0 where unsupported)."""
    huge_page = huge_page_size()
    if _madvise is None or huge_page == 0:
        return 0
    try:
        with open(maps) as lines:
            regions = [_stretch(line, huge_page) for line in lines]
    except OSError:
        return 0
    collapsed = 0
    for start, length in filter(None, regions):
        if _madvise(start, length, MADV_HUGEPAGE) != 0:
            continue
        if _madvise(start, length, MADV_COLLAPSE) == 0:
            collapsed += length
    return collapsed


def _stretch(line: str, huge_page: int) -> tuple[int, int] | None:
    """The stretch of whole, aligned huge pages (start, length) inside one region of
    /proc/self/maps, if the region is private anonymous memory (the heap or an anonymous
    mapping) that holds one."""
    match = _REGION.match(line)
    if match is None or match[3] != "rw-p" or match[4].strip() not in ("", "[heap]"):
        return None
    start = -(-int(match[1], 16) // huge_page) * huge_page
    end = int(match[2], 16) // huge_page * huge_page
    return (start, end - start) if end > start else None
