"""Process helpers shared by workers, their horses and throwaway clusters.

No Django here: :mod:`pq.testing` uses them before Django is configured.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _libc_prctl() -> Callable[..., int] | None:
    """Return libc's ``prctl``, or None where there is none (not Linux)."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_prctl = _libc_prctl()  # looked up once, not in each forked child


def set_parent_death_signal(signum: int) -> bool:
    """Have the kernel send this process ``signum`` when the thread that forked it ends.

    For a child right after ``fork()`` (or in a ``preexec_fn``). Returns False where that
    cannot be asked for (no ``prctl``: not Linux).
    """
    if _prctl is None:
        return False
    _prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    return True


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
